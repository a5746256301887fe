package kafka

import (
	"errors"
	"fmt"

	"github.com/Shopify/sarama"
)

// Publish failures, recognisable with errors.Is (the Sarama error stays in
// the chain).
var (
	// ErrUnknownTopic: the topic (or its partition) does not exist, or its
	// name is invalid, and the cluster does not create it on first use. A
	// failure of the whole topic: the messages stay pending (in emitd's
	// outbox, in order) until an operator creates it.
	ErrUnknownTopic = errors.New("kafka: topic or partition does not exist")
	// ErrMessageTooLarge: the record is over the producer's or the
	// broker's/topic's message size limit. That message alone is refused.
	ErrMessageTooLarge = errors.New("kafka: message too large")
	// ErrInvalidMessage: the message cannot be made into a record (reserved
	// metadata key) or the broker rejected the record as invalid. That
	// message alone is refused.
	ErrInvalidMessage = errors.New("kafka: invalid message")
)

// classify wraps a publish error with the sentinel it matches and says
// whether it is a failure of the whole topic or cluster (the message is
// fine; it waits) rather than of that one message (refused for good).
// Anything not known to be the message's fault counts as the topic's:
// refusing a good message for good is the worse mistake.
func classify(err error) (wrapped error, wholeTopic bool) {
	var kerr sarama.KError
	switch {
	case errors.Is(err, ErrInvalidMessage):
		return err, false
	case errors.Is(err, sarama.ErrMessageSizeTooLarge):
		return fmt.Errorf("%w: %w", ErrMessageTooLarge, err), false
	case errors.As(err, &kerr):
		switch kerr {
		case sarama.ErrUnknownTopicOrPartition, sarama.ErrInvalidTopic:
			return fmt.Errorf("%w: %w", ErrUnknownTopic, err), true
		case sarama.ErrMessageSizeTooLarge:
			return fmt.Errorf("%w: %w", ErrMessageTooLarge, err), false
		case sarama.ErrInvalidRecord, sarama.ErrInvalidMessage:
			return fmt.Errorf("%w: %w", ErrInvalidMessage, err), false
		}
	}
	return err, true
}
