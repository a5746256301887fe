package router_test

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/publisher"
	"github.com/emitd/emitd/router"
)

// FuzzDeadLetterRoundTrip: a message goes to the poison queue and comes
// back. In: any payload bytes and metadata, a poison context (any reason).
// Across the wire the dead letter may take the most constrained form emitd
// gives it (SQS's ten attributes, the rest packed), then it is read into a
// DeadLetter and replayed. Out: the exact payload bytes, the exact original
// metadata (the poison context gone, the replay count raised by one), the
// digest that vouches for the bytes, and the reason as given.
func FuzzDeadLetterRoundTrip(f *testing.F) {
	f.Add([]byte(`{"type":"CreateSlots","id":"c1"}`), "corr-1", "sender", "billing", "not valid JSON", 0)
	f.Add([]byte{}, "", "", "", "", 0)
	f.Add([]byte("\xff\xfe\x00 binary"), "c", "dlq_reason", "spoofed", "retries exhausted after 6 attempts: down", 2)
	f.Add([]byte(`{}`), "ü", "weird key with spaces", "", "reason with \n newline", 7)
	f.Add(bytes.Repeat([]byte("x"), 4096), "c", "k.k", "v\x00v", "r", 1)
	f.Fuzz(func(t *testing.T, payload []byte, corr, key, val, reason string, replays int) {
		if replays < 0 || replays > 1000 {
			return
		}
		orig := message.NewMessage("msg-1", payload)
		if corr != "" {
			orig.Metadata.Set(publisher.MetaCorrelationID, corr)
		}
		isPoisonKey := key == publisher.DLQReplays
		for _, k := range publisher.PoisonContextKeys {
			isPoisonKey = isPoisonKey || key == k
		}
		if key != "" && !isPoisonKey {
			orig.Metadata.Set(key, val)
		}
		if replays > 0 {
			orig.Metadata.Set(publisher.DLQReplays, strconv.Itoa(replays))
		}
		at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
		dl := &router.DeadLetterError{Code: "malformed", Reason: reason, Class: router.Permanent, Attempts: 1, First: at, Last: at}
		m := router.DeadLetterMessage(orig, dl, "host/1")

		// Over SQS: ten attributes at most, the rest packed into one.
		uuid, md, err := sqs.DecodeAttributes(sqs.EncodeAttributes(m.UUID, m.Metadata))
		if err != nil {
			t.Fatalf("attributes do not decode: %v", err)
		}
		wire := message.NewMessage(uuid, m.Payload)
		wire.Metadata = md

		d := publisher.CommandDeadLetter(wire)
		if !bytes.Equal(d.Payload, payload) || d.ID != "msg-1" || d.Reason != reason || d.Digest != publisher.Digest(payload) ||
			d.Replays != replays || !d.First.Equal(at) || d.Class != string(router.Permanent) {
			t.Fatalf("dead letter %+v (payload %q), want the original bytes, id, reason, digest, replays", d, d.Payload)
		}
		back := publisher.ReplayMessage(d)
		if !bytes.Equal(back.Payload, payload) {
			t.Fatalf("replayed payload %q, want %q", back.Payload, payload)
		}
		want := message.Metadata{}
		for k, v := range orig.Metadata {
			want[k] = v
		}
		want[publisher.DLQReplays] = strconv.Itoa(replays + 1)
		if len(back.Metadata) != len(want) {
			t.Fatalf("replayed metadata %v, want %v", back.Metadata, want)
		}
		for k, v := range want {
			if back.Metadata[k] != v {
				t.Fatalf("replayed metadata %q = %q, want %q (all: %v)", k, back.Metadata[k], v, back.Metadata)
			}
		}
	})
}
