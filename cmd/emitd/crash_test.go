package main

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// TestCrashLosesAndInventsNothing kills the real daemon (SIGKILL) in the middle
// of a few thousand commands, restarts it, and checks that every accepted
// command's events reach their buses and that no event appears that no
// accepted command caused. Delivery is at least once, so repeats are allowed
// (and counted in the log), losses and inventions are not.
func TestCrashLosesAndInventsNothing(t *testing.T) {
	const commands = 3000
	dir := t.TempDir()
	port := freePort(t)
	cfgPath := writeConfig(t, dir, port)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)

	p := startServe(t, cfgPath)

	// Every command creates one slot on its own day and hour, so each
	// accepted command causes exactly one domain and one analytics event.
	var msgs []*message.Message
	sent := map[string]bool{}
	for i := range commands {
		id := uuid.NewString()
		day := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i/18)
		payload := fmt.Sprintf(`{"type":"CreateSlots","id":%q,"data":{"date":%q,"startHour":%d,"count":1}}`,
			id, day.Format("2006-01-02"), 6+i%18)
		msgs = append(msgs, message.NewMessage(id, []byte(payload)))
		sent[id] = true
	}
	pub, err := natsjs.NewPublisher(natsjs.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("slot-commands", msgs...); err != nil {
		t.Fatal(err)
	}
	_ = pub.Close()

	// Kill it once a good part, but not all, has been processed.
	waitStream(t, url, "slot-command-results", commands/5)
	if err := p.stop(t, syscall.SIGKILL); err == nil {
		t.Fatal("emitd exited 0 on SIGKILL?")
	}

	p2 := startServe(t, cfgPath)
	seen := map[string]bool{}
	results := readAll(t, url, "slot-command-results", func(m *message.Message) bool {
		var o domain.Outcome
		_ = json.Unmarshal(m.Payload, &o)
		seen[o.CommandID] = true
		return len(seen) >= commands
	})
	outs := distinctOutcomes(t, results)
	want := map[string]string{} // event id -> bus
	for id := range sent {
		o, ok := outs[id]
		if !ok {
			t.Fatalf("command %s has no outcome: lost", id)
		}
		if o.Status != domain.OutcomeAccepted || len(o.EventIDs) != 2 {
			t.Fatalf("command %s: outcome %+v", id, o)
		}
		want[o.EventIDs[0]], want[o.EventIDs[1]] = "reservation", "analytics"
	}
	for _, bus := range []string{"reservation", "analytics"} {
		// Read the whole stream, not just until every expected event was
		// seen: an invented event may come after the real ones.
		seen, total, n := map[string]bool{}, -1, 0
		got := readAll(t, url, bus, func(m *message.Message) bool {
			seen[m.Metadata.Get(publisher.MetaEventID)] = true
			n++
			if len(seen) >= commands && total < 0 {
				total = streamCount(url, bus)
			}
			return total >= 0 && n >= total
		})
		ids := distinctIDs(got)
		for id := range ids {
			if want[id] != bus {
				t.Errorf("event %s on %s: no accepted command caused it (invented)", id, bus)
			}
		}
		for id, b := range want {
			if b == bus && !ids[id] {
				t.Errorf("event %s of an accepted command never reached %s (lost)", id, bus)
			}
		}
		t.Logf("%s: %d messages, %d distinct events, %d repeats", bus, len(got), len(ids), len(got)-len(ids))
	}
	if err := p2.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("emitd did not exit 0 on SIGTERM: %v\n%s", err, p2.Log())
	}
}

func distinctOutcomes(t *testing.T, msgs []*message.Message) map[string]domain.Outcome {
	out := map[string]domain.Outcome{}
	for _, m := range msgs {
		var o domain.Outcome
		if err := json.Unmarshal(m.Payload, &o); err != nil {
			t.Fatalf("outcome %q: %v", m.Payload, err)
		}
		out[o.CommandID] = o
	}
	return out
}

func distinctIDs(msgs []*message.Message) map[string]bool {
	ids := map[string]bool{}
	for _, m := range msgs {
		ids[m.Metadata.Get(publisher.MetaEventID)] = true
	}
	return ids
}

// streamCount is how many messages the topic's stream holds (-1: unreachable).
func streamCount(url, topic string) int {
	nc, err := nats.Connect(url, nats.MaxReconnects(0))
	if err != nil {
		return -1
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return -1
	}
	info, err := js.StreamInfo(natsjs.Config{}.StreamName(topic))
	if err != nil {
		return -1
	}
	return int(info.State.Msgs)
}

func waitStream(t *testing.T, url, topic string, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for streamCount(url, topic) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %d messages", topic, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readAll reads topic from its beginning until enough, called with each
// message in turn, says so, or until it has read upTo messages.
func readAll(t *testing.T, url, topic string, enough func(*message.Message) bool, upTo ...int) []*message.Message {
	t.Helper()
	sub, err := natsjs.NewSubscriber(natsjs.Config{URL: url, DeliverAll: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var got []*message.Message
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("%s: subscription closed after %d messages", topic, len(got))
			}
			got = append(got, m)
			m.Ack()
			if enough(m) || (len(upTo) > 0 && len(got) >= upTo[0]) {
				return got
			}
		case <-ctx.Done():
			t.Fatalf("%s: only %d messages after 2 minutes (dead letters: %d)", topic, len(got), streamCount(url, "slot-commands-dlq"))
		}
	}
}
