package kafka

import (
	"fmt"
	"sort"

	"github.com/Shopify/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v2/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/publisher"
)

// UUIDHeader is the record header that carries the Watermill message UUID
// (watermill-kafka's own key, so any Watermill consumer reads it).
const UUIDHeader = kafka.UUIDHeaderKey

// The CloudEvents Kafka protocol binding, binary mode: every attribute is a
// header "ce_<name>", and datacontenttype is the "content-type" header.
// emitd's messages carry the attributes as neutral metadata
// (publisher.CEAttributePrefix); the marshaler renames them both ways.
const (
	CEHeaderPrefix    = "ce_"
	ContentTypeHeader = "content-type"
)

// HeaderName is the record header that carries a Watermill metadata key.
func HeaderName(key string) string { return ceHeaders.Header(key) }

// metadataKey is HeaderName's inverse.
func metadataKey(header string) string { return ceHeaders.Key(header) }

var ceHeaders = publisher.HeaderNaming{Prefix: CEHeaderPrefix, ContentType: ContentTypeHeader}

// Marshaler maps Watermill messages to Kafka records and back (see the
// package comment). It implements watermill-kafka's MarshalerUnmarshaler.
type Marshaler struct{}

var _ kafka.MarshalerUnmarshaler = Marshaler{}

// Marshal makes the record for msg on topic: key = slot id (else UUID),
// value = payload unchanged, headers = metadata (sorted by key) + UUID.
func (Marshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	if _, ok := msg.Metadata[UUIDHeader]; ok {
		return nil, fmt.Errorf("%w: metadata key %s is reserved for the message UUID", ErrInvalidMessage, UUIDHeader)
	}
	names := make(map[string]string, len(msg.Metadata)) // header -> metadata key
	for k := range msg.Metadata {
		names[HeaderName(k)] = k
	}
	keys := make([]string, 0, len(names))
	for h := range names {
		keys = append(keys, h)
	}
	sort.Strings(keys)
	headers := make([]sarama.RecordHeader, 0, len(keys)+1)
	headers = append(headers, sarama.RecordHeader{Key: []byte(UUIDHeader), Value: []byte(msg.UUID)})
	for _, h := range keys {
		headers = append(headers, sarama.RecordHeader{Key: []byte(h), Value: []byte(msg.Metadata[names[h]])})
	}
	key := msg.Metadata.Get(publisher.MetaSlotID)
	if key == "" {
		key = msg.UUID
	}
	return &sarama.ProducerMessage{
		Topic:   topic,
		Key:     sarama.StringEncoder(key),
		Value:   sarama.ByteEncoder(msg.Payload),
		Headers: headers,
	}, nil
}

// Unmarshal makes the Watermill message for a record: payload = value, UUID
// from the UUID header, metadata = the other headers. It never fails, so a
// record written by another producer cannot stop the consumer: without a
// UUID header the UUID is the event-id header, else topic/partition/offset.
// The record key, partition and offset are on the message context
// (kafka.MessageKeyFromCtx and friends in watermill-kafka).
func (Marshaler) Unmarshal(rec *sarama.ConsumerMessage) (*message.Message, error) {
	var uuid string
	md := make(message.Metadata, len(rec.Headers))
	for _, h := range rec.Headers {
		if h == nil {
			continue
		}
		if string(h.Key) == UUIDHeader {
			uuid = string(h.Value)
			continue
		}
		md.Set(metadataKey(string(h.Key)), string(h.Value))
	}
	if uuid == "" {
		uuid = md.Get(publisher.MetaEventID)
	}
	if uuid == "" {
		uuid = fmt.Sprintf("kafka:%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)
	}
	msg := message.NewMessage(uuid, rec.Value)
	msg.Metadata = md
	return msg, nil
}
