package publisher

import (
	"context"
	"time"

	"github.com/emitd/emitd/domain"
)

// OutboxRecord is one committed envelope waiting for its bus. Seq is the
// commit order: the relay publishes in Seq order.
type OutboxRecord struct {
	Seq      int64
	Envelope domain.Envelope
}

// EventDeadLetter is an envelope the bus refused for good, kept with its
// exact bytes, its bus and the error.
type EventDeadLetter struct {
	Seq      int64
	Envelope domain.Envelope
	Reason   string
	At       time.Time
}

// Outbox is the store side of the events relay.
type Outbox interface {
	// PendingEnvelopes returns up to limit unsent envelopes in commit order.
	PendingEnvelopes(ctx context.Context, limit int) ([]OutboxRecord, error)
	// MarkSent removes delivered envelopes from the outbox, in one round trip.
	MarkSent(ctx context.Context, seqs []int64) error
	// DeadLetterEvents moves refused envelopes from the outbox to the event
	// dead letters atomically: an envelope is always in exactly one of them.
	DeadLetterEvents(ctx context.Context, dls []EventDeadLetter) error
}

// OutcomeRecord is one committed outcome waiting for the results topic.
// MessageID is fixed when the outcome is committed, so that a relay that
// publishes it twice (a crash between publish and MarkOutcomesSent)
// publishes the same message, which brokers that drop repeated ids drop.
type OutcomeRecord struct {
	Seq       int64
	MessageID string
	Outcome   domain.Outcome
	Payload   []byte // the outcome JSON, as sent to the results topic
}

// OutcomeOutbox is the store side of the outcomes relay.
type OutcomeOutbox interface {
	// PendingOutcomes returns up to limit unsent outcomes in commit order.
	PendingOutcomes(ctx context.Context, limit int) ([]OutcomeRecord, error)
	// MarkOutcomesSent removes delivered outcomes from the outcome outbox.
	MarkOutcomesSent(ctx context.Context, seqs []int64) error
}
