package sqs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	wsqs "github.com/ThreeDotsLabs/watermill-aws/sqs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/emitd/emitd/publisher"
)

// Marshaler maps Watermill messages to SQS messages and back; see the package
// doc. It implements watermill-aws's sqs.Marshaler and sqs.Unmarshaler.
type Marshaler struct{}

var (
	_ wsqs.Marshaler   = Marshaler{}
	_ wsqs.Unmarshaler = Marshaler{}
)

// Keys of types.Message.Attributes (system attributes) through which Marshal
// hands the FIFO ids to the publisher, which alone knows whether the queue
// is FIFO (a standard queue refuses them).
const (
	sysGroupID = string(types.MessageSystemAttributeNameMessageGroupId)
	sysDedupID = string(types.MessageSystemAttributeNameMessageDeduplicationId)
)

// Marshal: body = payload unchanged, attributes per EncodeAttributes.
func (Marshaler) Marshal(msg *message.Message) (*types.Message, error) {
	attrs := EncodeAttributes(msg.UUID, msg.Metadata)
	out := make(map[string]types.MessageAttributeValue, len(attrs))
	for k, v := range attrs {
		out[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return &types.Message{
		Body:              aws.String(string(msg.Payload)),
		MessageAttributes: out,
		Attributes: map[string]string{
			sysGroupID: GroupID(msg),
			sysDedupID: DeduplicationID(msg),
		},
	}, nil
}

// Unmarshal: payload = body, UUID from UUIDAttribute (else the SQS message
// id, for messages not sent by us), metadata = the attributes with the packed
// overflow unpacked.
func (Marshaler) Unmarshal(m *types.Message) (*message.Message, error) {
	attrs := make(map[string]string, len(m.MessageAttributes))
	for k, v := range m.MessageAttributes {
		switch {
		case v.StringValue != nil:
			attrs[k] = *v.StringValue
		case v.BinaryValue != nil:
			attrs[k] = string(v.BinaryValue)
		}
	}
	uuid, md, err := DecodeAttributes(attrs)
	if err != nil {
		return nil, fmt.Errorf("sqs message %s: %w", aws.ToString(m.MessageId), err)
	}
	if uuid == "" {
		uuid = aws.ToString(m.MessageId)
	}
	msg := message.NewMessage(uuid, []byte(aws.ToString(m.Body)))
	msg.Metadata = md
	return msg, nil
}

// GroupID is a FIFO message's group: the slot id (per-slot order), or the
// message UUID when it has none. A slot id that SQS/SNS would refuse as a
// group id (over 128 characters, or characters outside printable ASCII) is
// replaced by its SHA-256, which keeps one group per slot.
func GroupID(msg *message.Message) string {
	g := msg.Metadata.Get(publisher.MetaSlotID)
	if g == "" {
		g = msg.UUID
	}
	return fifoID(g)
}

// DeduplicationID is a FIFO message's deduplication id: the message UUID.
func DeduplicationID(msg *message.Message) string { return fifoID(msg.UUID) }

func fifoID(s string) string {
	ok := s != "" && len(s) <= 128
	for i := 0; ok && i < len(s); i++ {
		ok = s[i] > 0x20 && s[i] < 0x7f // alphanumerics and punctuation
	}
	if ok {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// IsFIFO says whether a queue URL or name (or SNS topic ARN) is FIFO.
func IsFIFO(queue string) bool { return strings.HasSuffix(queue, FIFOSuffix) }
