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

// Outbox is the store side of the relay.
type Outbox interface {
	// PendingEnvelopes returns up to limit unsent envelopes in commit order.
	PendingEnvelopes(ctx context.Context, limit int) ([]OutboxRecord, error)
	// MarkSent removes delivered envelopes from the outbox, in one round trip.
	MarkSent(ctx context.Context, seqs []int64) error
	// DeadLetterEvents moves refused envelopes from the outbox to the event
	// dead letters atomically: an envelope is always in exactly one of them.
	DeadLetterEvents(ctx context.Context, dls []EventDeadLetter) error
}
