package domain

import (
	"context"
	"errors"
	"time"
)

// Outcome is what became of one command; it is stored with the command id
// (so a redelivered command gets the same answer) and sent to the results
// topic for the sender.
type Outcome struct {
	CommandID     string      `json:"commandId"`
	CorrelationID string      `json:"correlationId"`
	Type          CommandType `json:"type"`
	Status        string      `json:"status"` // OutcomeAccepted, OutcomeRejected or OutcomeDeadLettered
	EventIDs      []string    `json:"eventIds,omitempty"`
	Reason        string      `json:"reason,omitempty"`
	At            time.Time   `json:"at"`
}

// Outcome statuses.
const (
	OutcomeAccepted = "accepted"
	OutcomeRejected = "rejected"
	// OutcomeDeadLettered: the command could not be processed and went to
	// the poison queue (Reason says why); an operator may replay it.
	OutcomeDeadLettered = "dead-lettered"
)

// Commit is everything one command changes, written in one transaction: the
// new slot states, the envelopes for the outbox, and the command id with its
// outcome. Each slot's Version is its new version; the store refuses the
// commit if the stored version is not Version-1 (optimistic concurrency).
type Commit struct {
	Outcome   Outcome
	Slots     []Slot
	Envelopes []Envelope
}

// Store is the port the command handler writes through.
type Store interface {
	SlotSource
	// ProcessedOutcome returns the stored outcome of a command already processed.
	ProcessedOutcome(ctx context.Context, commandID string) (Outcome, bool, error)
	// Commit writes c atomically; ErrDuplicateCommand if the command id is
	// already processed, ErrConcurrentUpdate if a slot changed underneath.
	Commit(ctx context.Context, c Commit) error
}

var (
	// ErrDuplicateCommand: the command id was processed before; nothing was written.
	ErrDuplicateCommand = errors.New("command already processed")
	// ErrConcurrentUpdate: a slot's version moved since it was read; retrying decides again.
	ErrConcurrentUpdate = errors.New("slot changed concurrently")
)
