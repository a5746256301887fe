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

// Commit is what one command (or one delivery of it) writes: its outcome,
// and for an accepted command the new slot states and the envelopes for the
// outbox. Each slot's Version is its new version; the store refuses the
// commit if the stored version is not Version-1 (optimistic concurrency, on
// top of the row locks a store may take).
type Commit struct {
	Outcome Outcome
	// Record stores Outcome as the command's answer under its id, so that a
	// redelivery is recognised. False for an answer sent again to a
	// duplicate, and for bytes that carry no command id at all (their
	// Outcome.CommandID is the message id, which identifies nothing).
	Record bool
	// Replays is how often the delivery that made this commit had been
	// replayed from the poison queue. A command recorded as dead-lettered
	// may be recorded again by a delivery with more replays: that is the
	// operator's replay, which must be processed anew.
	Replays   int
	Slots     []Slot
	Envelopes []Envelope
}

// Processed is the stored record of a command id.
type Processed struct {
	Outcome Outcome
	Replays int
}

// Redo reports whether a delivery that has been replayed replays times is a
// new attempt at a command recorded as p, rather than a duplicate: only a
// dead-lettered command is tried again, and only by its operator's replay.
func (p Processed) Redo(replays int) bool {
	return p.Outcome.Status == OutcomeDeadLettered && replays > p.Replays
}

// Store is the port the command pipeline writes through. It is built for
// group commit: one transaction decides and records a whole batch of
// commands, so a durable store (fsync on every commit) pays its price once
// per batch rather than once per command.
type Store interface {
	// Batch runs fn inside one transaction and commits it when fn returns
	// nil; an error from fn rolls everything back. A store may run fn again
	// from the start, in a new transaction, when the transaction lost a race
	// against another instance (ErrConflict): fn must derive everything it
	// writes from what it reads through tx.
	Batch(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
}

// Tx is one open batch transaction. Reads of slots lock them until the
// transaction ends where the store has row locks (PostgreSQL), so that two
// instances deciding on the same slot take turns and the second decides
// against what the first wrote; a store with a single writer (SQLite) holds
// its write lock for the whole transaction instead.
type Tx interface {
	// Processed returns the records of those of ids that were processed.
	Processed(ctx context.Context, ids []string) (map[string]Processed, error)
	// Slots returns, locked, those of the slots with these ids that exist.
	Slots(ctx context.Context, ids []string) (map[string]Slot, error)
	// ListSlots returns, locked, every slot having one of these statuses.
	ListSlots(ctx context.Context, statuses ...Status) ([]Slot, error)
	// Save writes the commits in order: recorded outcomes, slot states,
	// envelopes into the outbox and every outcome into the outcome outbox
	// (for the results topic). ErrConflict: another transaction recorded one
	// of these command ids, or changed one of these slots, first; the batch
	// must be decided again.
	Save(ctx context.Context, commits []Commit) error
}

var (
	// ErrConflict: another transaction got there first (a command id was
	// recorded, or a slot's version moved); deciding the batch again, on
	// what is stored now, resolves it.
	ErrConflict = errors.New("store: a concurrent transaction recorded the same command or slot first")
	// ErrUnavailable marks a store failure that says nothing about the
	// commands: the database is down, unreachable, busy or out of disk.
	// Commands wait for it; they are never dead-lettered because of it.
	ErrUnavailable = errors.New("store unavailable")
)
