package publisher

import (
	"context"
	"time"
)

// Backlog is what waits in one outbox.
type Backlog struct {
	Pending int64
	// Oldest is when the oldest waiting record was committed (zero when
	// nothing waits). Its age is the relay's lag.
	Oldest time.Time
}

// Age is how long the oldest record has waited at now (0 when none waits).
func (b Backlog) Age(now time.Time) time.Duration {
	if b.Oldest.IsZero() || now.Before(b.Oldest) {
		return 0
	}
	return now.Sub(b.Oldest)
}

// OutboxReport is what waits for the relays.
type OutboxReport struct {
	Envelopes Backlog // for the buses
	Outcomes  Backlog // for the results topic
}

// DeadLetterCount is how many dead letters the store lists (purged ones
// aside) of one kind and reason code.
type DeadLetterCount struct {
	Kind  string
	Code  string // the bounded reason code; "" for dead letters stored before codes were kept
	Count int64
}

// Reporter is what a store tells operations about itself: the metrics, the
// readiness probe and `emitd status` read it. Every method only reads.
type Reporter interface {
	// Outboxes reports both outboxes.
	Outboxes(ctx context.Context) (OutboxReport, error)
	// DeadLetterCounts counts the listed dead letters by kind and code.
	DeadLetterCounts(ctx context.Context) ([]DeadLetterCount, error)
	// ProcessedCounts counts the recorded command ids by outcome status
	// (accepted, rejected, dead-lettered), over what store.retention keeps.
	ProcessedCounts(ctx context.Context) (map[string]int64, error)
}
