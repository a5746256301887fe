package publisher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/domain"
)

// Metadata keys of the poison context a dead-lettered command carries on top
// of its original metadata. Replay removes exactly these (and raises
// DLQReplays), so what goes back is the original message.
const (
	DLQReason       = "dlq_reason"
	DLQClass        = "dlq_class"
	DLQTopic        = "dlq_original_topic"
	DLQHandler      = "dlq_handler"
	DLQAttempts     = "dlq_attempts"
	DLQFirstFailure = "dlq_first_failure"
	DLQLastFailure  = "dlq_last_failure"
	DLQInstance     = "dlq_instance"
	DLQDigest       = "dlq_payload_sha256"
	// DLQCode is the bounded reason code (malformed, invalid,
	// retries_exhausted, ...): what counters and `emitd status` group by,
	// where the reason itself is text for people.
	DLQCode = "dlq_reason_code"
	// DLQReplays survives replay: it counts how often a message went back,
	// so a message that keeps failing cannot loop for ever.
	DLQReplays = "dlq_replays"
)

// PoisonContextKeys are the keys replay strips before re-publishing.
var PoisonContextKeys = []string{DLQReason, DLQClass, DLQTopic, DLQHandler, DLQAttempts,
	DLQFirstFailure, DLQLastFailure, DLQInstance, DLQDigest, DLQCode}

// Digest is the SHA-256 of a payload, hex encoded, as stored in DLQDigest.
func Digest(payload []byte) string {
	sum := sha256.Sum256(payload)
	return hex.EncodeToString(sum[:])
}

// Dead-letter kinds.
const (
	KindCommand = "command"
	KindEvent   = "event"
	// KindOutcome: an outcome the results topic refused for good.
	KindOutcome = "outcome"
)

// Reason codes of the dead letters the relays make (the command pipeline's
// are router.ReasonCode's).
const (
	// CodeRefused: the broker refused the message for good.
	CodeRefused = "refused"
	// CodePolicy: the emit policy forbids the event on its bus.
	CodePolicy = "policy"
)

// DeadLetter is one message that could not be processed (a command) or
// delivered (an event), as operations list, show, purge and replay it. The
// payload and metadata are the original message's, byte for byte; the
// poison context sits beside them.
type DeadLetter struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Origin   string    `json:"origin"` // the topic a command came from, or the bus an event was meant for
	Reason   string    `json:"reason"`
	Code     string    `json:"reasonCode,omitempty"` // bounded: malformed, invalid, retries_exhausted, refused, policy, ...
	Class    string    `json:"errorClass"`
	Attempts int       `json:"attempts"`
	Replays  int       `json:"replays"`
	First    time.Time `json:"firstFailure"`
	Last     time.Time `json:"lastFailure"`
	Digest   string    `json:"payloadSha256"`
	// Purged is when an operator purged it, or a replay took it back (zero:
	// it is listed). A purged dead letter is kept, out of the listings,
	// until store.retention has passed.
	Purged   time.Time         `json:"purgedAt,omitzero"`
	Payload  []byte            `json:"-"`
	Metadata map[string]string `json:"-"` // original metadata, poison context removed
}

// DeadLetterFilter selects dead letters; zero fields select everything
// that is not purged.
type DeadLetterFilter struct {
	IDs    []string
	Kind   string
	Reason string // substring of the reason
	Since  time.Time
	Limit  int
	// Purged selects the purged dead letters (and only them) instead.
	Purged bool
}

// Matches reports whether d passes the filter (IDs and Limit aside, which
// the store applies).
func (f DeadLetterFilter) Matches(d DeadLetter) bool {
	if f.Kind != "" && d.Kind != f.Kind {
		return false
	}
	if f.Reason != "" && !strings.Contains(strings.ToLower(d.Reason), strings.ToLower(f.Reason)) {
		return false
	}
	if !f.Since.IsZero() && d.First.Before(f.Since) {
		return false
	}
	return true
}

// DeadLetterKey identifies a dead letter: its message id and its payload's
// digest. The id alone does not: two different messages may carry the same
// id (a sender that reuses ids, a broker's id for a foreign message), and
// both must be kept.
type DeadLetterKey struct {
	ID     string
	Digest string
}

// Key is the dead letter's key.
func (d DeadLetter) Key() DeadLetterKey { return DeadLetterKey{ID: d.ID, Digest: d.Digest} }

// DeadLetterStore keeps the dead letters that operations work on.
type DeadLetterStore interface {
	// AddDeadLetters stores dead letters; one whose key is stored already
	// is left as it is (the same message dead-lettered twice is kept once),
	// unless it was purged: dead-lettered again, it comes back as given.
	AddDeadLetters(ctx context.Context, dls []DeadLetter) error
	// DeadLetters lists dead letters matching f, oldest first.
	DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error)
	// DeleteDeadLetters purges dead letters by key (they leave every
	// listing) and says how many went.
	DeleteDeadLetters(ctx context.Context, keys []DeadLetterKey) (int, error)
}

// EventReplayStore keeps, per event id (metadata.id), how often the event
// was re-emitted from a bus's dead-letter queue (`emitd replay
// --from-queue`): the loop guard that --max-replays enforces. An event that
// the bus cannot deliver goes back to the dead-letter queue after each
// re-emit; the count, kept in the store, stops it going round for ever,
// across runs, operators and machines.
type EventReplayStore interface {
	// EventReplays returns the count of each of ids that was re-emitted
	// at least once (an id not in the map: never).
	EventReplays(ctx context.Context, ids []string) (map[string]int, error)
	// TakeEventReplay raises the count of id by one unless it is max or
	// more already, and returns the count after and whether it raised it.
	// It is atomic: takers at the same time never raise a count past max.
	TakeEventReplay(ctx context.Context, id string, max int) (count int, taken bool, err error)
	// ReturnEventReplay lowers the count of id by one, never below zero:
	// a replay taken for a re-emit that did not reach the bus.
	ReturnEventReplay(ctx context.Context, id string) error
}

// Pruned counts what a store's retention removed.
type Pruned struct {
	Records     int // processed-command records
	DeadLetters int // purged dead letters
}

// Leaser hands a role (the relay of an outbox, the schedule) to one
// instance at a time.
type Leaser interface {
	// Lease waits until this instance holds the named lease, or ctx ends.
	// held ends when the lease is lost; release lets it go.
	Lease(ctx context.Context, name string) (held context.Context, release func(), err error)
}

// CommandDeadLetter turns a message from the command poison queue into a
// DeadLetter: the poison context moves out of the metadata.
func CommandDeadLetter(msg *message.Message) DeadLetter {
	md := map[string]string{}
	for k, v := range msg.Metadata {
		md[k] = v
	}
	get := func(k string) string { v := md[k]; delete(md, k); return v }
	d := DeadLetter{ID: msg.UUID, Kind: KindCommand, Payload: msg.Payload}
	d.Reason, d.Class, d.Origin = get(DLQReason), get(DLQClass), get(DLQTopic)
	d.Code = get(DLQCode)
	d.Digest = get(DLQDigest)
	d.Attempts, _ = strconv.Atoi(get(DLQAttempts))
	d.Replays, _ = strconv.Atoi(md[DLQReplays]) // stays in the metadata: it travels with the message
	d.First, _ = time.Parse(time.RFC3339Nano, get(DLQFirstFailure))
	d.Last, _ = time.Parse(time.RFC3339Nano, get(DLQLastFailure))
	get(DLQHandler)
	get(DLQInstance)
	d.Metadata = md
	return d
}

// EventDeadLetterOf turns an envelope the bus refused for good into a
// DeadLetter whose payload and metadata are exactly the message the relay
// published.
func EventDeadLetterOf(env domain.Envelope, reason string, at time.Time) (DeadLetter, error) {
	msg, err := ToMessage(env)
	if err != nil {
		return DeadLetter{}, err
	}
	md := map[string]string{}
	for k, v := range msg.Metadata {
		md[k] = v
	}
	return DeadLetter{ID: env.ID, Kind: KindEvent, Origin: env.EventBusName, Reason: reason, Code: CodeRefused, Class: "refused",
		Attempts: 1, First: at, Last: at, Digest: Digest(msg.Payload), Payload: msg.Payload, Metadata: md}, nil
}
