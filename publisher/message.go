// Package publisher holds the port every event adapter implements (a
// Watermill message.Publisher fed with envelope messages), the outbox relay
// and the emit policy.
package publisher

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/domain"
)

// Metadata keys every adapter maps to its broker's headers or attributes.
// They are few on purpose: SQS allows 10 message attributes in all.
const (
	MetaSource        = "source"
	MetaDetailType    = "detail-type"
	MetaEventID       = "event-id"
	MetaCorrelationID = "correlation_id" // Watermill's own correlation key
	MetaSlotID        = "slot-id"        // partition key / message group
)

// ToMessage maps an envelope to the broker-neutral Watermill message that
// adapters publish: the payload is the EventBridge entry JSON (what `emitd
// tail` prints and what SNS/SQS/Kafka consumers read), the message UUID is the
// event id so consumers can drop repeats.
func ToMessage(env domain.Envelope) (*message.Message, error) {
	payload, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode envelope %s: %w", env.ID, err)
	}
	msg := message.NewMessage(env.ID, payload)
	msg.Metadata.Set(MetaSource, env.Source)
	msg.Metadata.Set(MetaDetailType, env.DetailType)
	msg.Metadata.Set(MetaEventID, env.ID)
	if env.CorrelationID != "" {
		msg.Metadata.Set(MetaCorrelationID, env.CorrelationID)
	}
	if env.SlotID != "" {
		msg.Metadata.Set(MetaSlotID, env.SlotID)
	}
	return msg, nil
}

// Entry is the EventBridge entry JSON of a message: the envelope's four
// fields and, for an event re-emitted from a bus's dead-letter queue, the
// resources it was delivered with. emitd's own events name none, and their
// JSON has no Resources key. (Resources stay out of domain.Envelope, which
// is compared with == and must stay comparable.)
type Entry struct {
	domain.Envelope
	Resources []string `json:"Resources,omitempty"`
}

// EntryMessage is ToMessage for an envelope with resources: the payload
// carries them after the four fields.
func EntryMessage(env domain.Envelope, resources []string) (*message.Message, error) {
	msg, err := ToMessage(env)
	if err != nil || len(resources) == 0 {
		return msg, err
	}
	if msg.Payload, err = json.Marshal(Entry{Envelope: env, Resources: resources}); err != nil {
		return nil, fmt.Errorf("encode envelope %s: %w", env.ID, err)
	}
	return msg, nil
}

// ParseEntry reads an entry JSON as a bus hands it back (an SNS
// subscription's dead letter holds the message emitd published): the
// envelope, its ids read from the Detail (domain.EnvelopeOf), and its
// resources. Errors say what is wrong, bounded.
func ParseEntry(payload []byte) (domain.Envelope, []string, error) {
	var e Entry
	if err := json.Unmarshal(payload, &e); err != nil {
		return domain.Envelope{}, nil, fmt.Errorf("not an event entry JSON: %s", domain.Excerpt(err.Error()))
	}
	if e.EventBusName == "" {
		return domain.Envelope{}, nil, errors.New("not an event entry JSON: no EventBusName")
	}
	env, err := domain.EnvelopeOf(e.EventBusName, e.Source, e.DetailType, e.Detail)
	if err != nil {
		return domain.Envelope{}, nil, err
	}
	if len(e.Resources) == 0 {
		return env, nil, nil
	}
	return env, e.Resources, nil
}

// FromMessage is the inverse of ToMessage, for tail, replay and tests.
func FromMessage(msg *message.Message) (domain.Envelope, error) {
	var env domain.Envelope
	if err := json.Unmarshal(msg.Payload, &env); err != nil {
		return env, fmt.Errorf("message %s is not an envelope entry: %w", msg.UUID, err)
	}
	if env.EventBusName == "" || env.Source == "" || env.DetailType == "" || env.Detail == "" {
		return env, fmt.Errorf("message %s is not an envelope entry: EventBusName, Source, DetailType and Detail are required", msg.UUID)
	}
	env.ID = msg.Metadata.Get(MetaEventID)
	if env.ID == "" {
		env.ID = msg.UUID
	}
	env.CorrelationID = msg.Metadata.Get(MetaCorrelationID)
	env.SlotID = msg.Metadata.Get(MetaSlotID)
	return env, nil
}

// BatchError is returned by an adapter's Publish when it can say, message by
// message, what happened to a batch. Messages named in neither map were
// delivered. Refused ones failed for good (the relay dead-letters them);
// Pending ones failed transiently (the relay keeps them and tries again).
// An adapter that returns any other error leaves the whole batch pending.
type BatchError struct {
	Refused map[string]error // message UUID -> why the bus refused it for good
	Pending map[string]error // message UUID -> transient failure
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("publish: %d refused for good, %d pending", len(e.Refused), len(e.Pending))
}

// AsBatchError unwraps err to a *BatchError, if it is one.
func AsBatchError(err error) (*BatchError, bool) {
	var be *BatchError
	ok := errors.As(err, &be)
	return be, ok
}
