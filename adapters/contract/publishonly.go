package contract

import (
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/domain"
)

// Delivered is one envelope as the broker (or the service) holds it, read
// back with its own client: the entry JSON it carries, and the native
// attributes or headers it carries beside it (nil where the broker has none:
// EventBridge keeps only the entry).
type Delivered struct {
	Body       []byte
	Attributes map[string]string
}

// PublisherFactory is the publish side of an adapter, for a bus that cannot
// be subscribed to through Watermill (EventBridge: what it accepted can only
// be seen through rules and their targets, or, in tests, its test server).
type PublisherFactory struct {
	Name         string
	NewPublisher func(t *testing.T) message.Publisher
	NewTopic     func(t *testing.T) string
	// ReadBack returns what the broker accepted on topic, in the order it
	// accepted it, once it holds at least n envelopes (or fails t).
	ReadBack func(t *testing.T, topic string, n int) []Delivered
}

// RunPublisher is the part of the contract that holds for every publisher:
// what goes out is each envelope once, byte for byte, with its native
// attributes; a batch keeps each slot's order (PerKeyOrder) or the whole
// order (GlobalOrder); nothing published before Close is lost by it.
// Adapters with a subscriber run Run, whose subtests cover the same from the
// receiving side.
func RunPublisher(t *testing.T, f PublisherFactory, feat Features) {
	t.Helper()
	name := f.Name
	if name == "" {
		name = t.Name()
	}
	check := func(t *testing.T, sent []domain.Envelope, got []Delivered) {
		t.Helper()
		want := map[string]domain.Envelope{}
		for _, e := range sent {
			want[string(EntryJSON(t, e))] = e
		}
		seen := map[string]int{}
		for _, d := range got {
			e, ok := want[string(d.Body)]
			if !ok {
				t.Errorf("[%s] the broker holds a body that was never sent, or was changed: %s", name, d.Body)
				continue
			}
			seen[e.ID]++
			if d.Attributes != nil {
				for k, v := range HeaderKeys(e) {
					if d.Attributes[k] != v {
						t.Errorf("[%s] %s: attribute %s = %q, want %q", name, e.ID, k, d.Attributes[k], v)
					}
				}
			}
		}
		for _, e := range sent {
			if seen[e.ID] != 1 {
				t.Errorf("[%s] envelope %s reached the broker %d times, want once", name, e.ID, seen[e.ID])
			}
		}
	}

	t.Run("Ping", func(t *testing.T) {
		pub := f.NewPublisher(t)
		t.Cleanup(func() { pub.Close() })
		checkPing(t, name, pub, f.NewTopic(t))
	})

	t.Run("EnvelopesUnchanged", func(t *testing.T) {
		topic := f.NewTopic(t)
		pub := f.NewPublisher(t)
		envs := Envelopes(topic, 7, Slots(3))
		envs[6].CorrelationID, envs[6].SlotID = "", "" // optional fields absent
		for _, m := range toMessages(t, envs) {
			if err := pub.Publish(topic, m); err != nil {
				t.Fatalf("[%s] publish: %v", name, err)
			}
		}
		check(t, envs, f.ReadBack(t, topic, len(envs)))
	})

	t.Run("BatchOrder", func(t *testing.T) {
		if !feat.PerKeyOrder && !feat.GlobalOrder {
			t.Skipf("[%s] declares no order", name)
		}
		topic := f.NewTopic(t)
		pub := f.NewPublisher(t)
		envs := Envelopes(topic, 25, Slots(4)) // 25: more than one PutEvents call
		if err := pub.Publish(topic, toMessages(t, envs)...); err != nil {
			t.Fatalf("[%s] publish: %v", name, err)
		}
		got := f.ReadBack(t, topic, len(envs))
		check(t, envs, got)
		bySlot := map[string][]int{}
		byBody := map[string]domain.Envelope{}
		for _, e := range envs {
			byBody[string(EntryJSON(t, e))] = e
		}
		var order []string
		for _, d := range got {
			e := byBody[string(d.Body)]
			bySlot[e.SlotID] = append(bySlot[e.SlotID], seqOf(e))
			order = append(order, e.ID)
		}
		for slot, seqs := range bySlot {
			for i := 1; i < len(seqs); i++ {
				if seqs[i] < seqs[i-1] {
					t.Errorf("[%s] slot %s accepted out of order: %v", name, slot, seqs)
					break
				}
			}
		}
		if feat.GlobalOrder && fmt.Sprint(order) != fmt.Sprint(ids(envs)) {
			t.Errorf("[%s] batch accepted out of order", name)
		}
	})

	t.Run("CloseLosesNothing", func(t *testing.T) {
		topic := f.NewTopic(t)
		pub := f.NewPublisher(t)
		envs := Envelopes(topic, 12, Slots(2))
		if err := pub.Publish(topic, toMessages(t, envs)...); err != nil {
			t.Fatalf("[%s] publish: %v", name, err)
		}
		done := make(chan error, 1)
		go func() { done <- pub.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("[%s] close: %v", name, err)
			}
		case <-time.After(WaitTimeout):
			t.Fatalf("[%s] close hangs", name)
		}
		check(t, envs, f.ReadBack(t, topic, len(envs)))
	})
}
