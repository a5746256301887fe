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
	Code     string // CodeRefused or CodePolicy; "" is CodeRefused
	At       time.Time
}

// Outbox is the store side of the events relay.
type Outbox interface {
	// PendingEnvelopes returns up to limit unsent envelopes numbered after
	// after, in commit order. The numbers must be the commit order: a
	// relay reads on from the last number it handled, and a number that
	// became visible after a higher one would be passed over.
	PendingEnvelopes(ctx context.Context, after int64, limit int) ([]OutboxRecord, error)
	// MarkSent removes delivered envelopes from the outbox. A store may
	// write it later (with the next batch): until then the envelopes are
	// still listed, and a relay that starts over publishes them again (at
	// least once).
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
	Seq           int64
	MessageID     string
	CommandID     string
	CorrelationID string
	Payload       []byte // the outcome JSON, as sent to the results topic
}

// OutcomeOutbox is the store side of the outcomes relay.
type OutcomeOutbox interface {
	// PendingOutcomes returns up to limit unsent outcomes numbered after
	// after, in commit order (see Outbox.PendingEnvelopes).
	PendingOutcomes(ctx context.Context, after int64, limit int) ([]OutcomeRecord, error)
	// MarkOutcomesSent removes delivered outcomes from the outcome outbox
	// (as Outbox.MarkSent, possibly later).
	MarkOutcomesSent(ctx context.Context, seqs []int64) error
}
