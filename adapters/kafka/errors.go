package kafka

import (
	"errors"
	"fmt"

	"github.com/Shopify/sarama"
)

// Permanent publish failures: retrying the same message on the same topic
// cannot succeed until an operator changes something. Publish reports them
// in a *publisher.BatchError's Refused map; test with errors.Is.
var (
	// ErrUnknownTopic: the topic (or its partition) does not exist, or its
	// name is invalid, and the cluster does not create it on first use.
	ErrUnknownTopic = errors.New("kafka: topic or partition does not exist")
	// ErrMessageTooLarge: the record is over Config.MaxMessageBytes or the
	// broker's/topic's message size limit.
	ErrMessageTooLarge = errors.New("kafka: message too large")
	// ErrInvalidMessage: the message cannot be made into a record (reserved
	// metadata key) or the broker rejected the record as invalid.
	ErrInvalidMessage = errors.New("kafka: invalid message")
)

// classify wraps a publish error with the sentinel it matches (the Sarama
// error stays in the chain), and says whether the failure concerns the whole
// topic (so the rest of a batch for that topic fails the same way).
func classify(err error) (wrapped error, permanent, wholeTopic bool) {
	var kerr sarama.KError
	switch {
	case errors.Is(err, ErrInvalidMessage):
		return err, true, false
	case errors.As(err, &kerr):
		switch kerr {
		case sarama.ErrUnknownTopicOrPartition, sarama.ErrInvalidTopic:
			return fmt.Errorf("%w: %w", ErrUnknownTopic, err), true, true
		case sarama.ErrMessageSizeTooLarge:
			return fmt.Errorf("%w: %w", ErrMessageTooLarge, err), true, false
		case sarama.ErrInvalidRecord:
			return fmt.Errorf("%w: %w", ErrInvalidMessage, err), true, false
		}
	}
	return err, false, false
}
