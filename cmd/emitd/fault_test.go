package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// badMessages makes n bad messages of every kind hardening asks for
// (not JSON, truncated, wrong types, invalid UTF-8, huge fields, deeply
// nested, empty, version 0), cycling through them; huge ones come every
// hugeEvery, and near of them are near (and over) the size limit.
func badMessages(n, near, hugeEvery, maxBytes int) []*message.Message {
	nested := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	small := []func() []byte{
		func() []byte { return []byte("not json " + uuid.NewString()) },
		func() []byte {
			return []byte(`{"type":"CreateSlots","id":"` + uuid.NewString() + `","data":{"date":"2030-01-0`)
		}, // truncated
		func() []byte {
			return []byte(`{"type":"CreateSlots","id":"` + uuid.NewString() + `","data":{"count":"ten"}}`)
		}, // wrong type
		func() []byte { return []byte(`{"type":"CreateSlots","id":"` + uuid.NewString() + "\xff\xfe" + `"}`) }, // invalid UTF-8
		func() []byte { return []byte(`{"type":"CreateSlots","data":{"hostName":"` + "\xc3\x28" + `"}}`) },     // invalid UTF-8, no id
		func() []byte { return nil }, // empty
		func() []byte { return []byte(`{"type":"CreateSlots","id":"` + uuid.NewString() + `","version":0}`) }, // version 0
		func() []byte { return []byte(`[1,2,3]`) },                                                            // not an object
	}
	huge := []func() []byte{
		func() []byte {
			return []byte(`{"type":"` + strings.Repeat("T", 100000) + `","id":"` + uuid.NewString() + `"}`)
		},
		func() []byte {
			return []byte(`{"type":"CreateSlots","id":"` + uuid.NewString() + `","data":` + nested + `}`)
		},
		func() []byte {
			return []byte(`{"type":"CloseSlots","id":"` + uuid.NewString() + `","` + strings.Repeat("k", 200000) + `":1}`)
		},
		func() []byte {
			return []byte(`{"type":"CreateSlots","id":"` + uuid.NewString() + `","data":{"date":"` + strings.Repeat("9", 150000) + `"}}`)
		},
	}
	var out []*message.Message
	for i := range n {
		var p []byte
		switch {
		case i < near:
			p = []byte(fmt.Sprintf(`{"type":"ReserveSlot","id":"%s","data":{"slotId":"%s","hostName":"%s"}}`,
				uuid.NewString(), uuid.NewString(), strings.Repeat("h", maxBytes-120+i%240)))
		case i%hugeEvery == 0:
			p = huge[(i/hugeEvery)%len(huge)]()
		default:
			p = small[i%len(small)]()
		}
		out = append(out, message.NewMessage(uuid.NewString(), p))
	}
	return out
}

// peakRSS is a process's peak resident set (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestFaultFlood: 10,000 bad messages of every kind, beside valid commands,
// into the real daemon. Every bad one is dead-lettered with a bounded
// reason and its sender answered; every valid one is processed; no event
// appears that a valid command did not cause; the daemon's memory stays
// bounded (by its in-flight window, not by the flood) and so does its log.
func TestFaultFlood(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	cfgPath := writeConfig(t, dir, port)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	p := startServe(t, cfgPath)

	const bad, valid, near, hugeEvery = 10000, 500, 40, 50
	msgs := badMessages(bad, near, hugeEvery, configs.DefaultMaxCommandBytes)
	good := map[string]bool{}
	var all []*message.Message
	for i, m := range msgs {
		all = append(all, m)
		if i%(bad/valid) == 0 {
			id := uuid.NewString()
			good[id] = true
			all = append(all, message.NewMessage(id, []byte(fmt.Sprintf(
				`{"type":"CreateSlots","id":%q,"data":{"date":"2031-%02d-%02d","startHour":%d,"count":1}}`, id, 1+len(good)/240%12, 1+len(good)/24%10, len(good)%24))))
		}
	}
	pub, err := natsjs.NewPublisher(natsjs.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	for start := 0; start < len(all); start += 200 {
		if err := pub.Publish("slot-commands", all[start:min(start+200, len(all))]...); err != nil {
			t.Fatal(err)
		}
	}
	_ = pub.Close()

	answers := map[string]domain.Outcome{}
	readAll(t, url, "slot-command-results", func(m *message.Message) bool {
		var o domain.Outcome
		if err := json.Unmarshal(m.Payload, &o); err != nil {
			t.Fatalf("outcome %q: %v", m.Payload, err)
		}
		answers[m.UUID] = o
		return len(answers) >= len(all)
	})
	byCommand := map[string]domain.Outcome{}
	dead := 0
	for _, o := range answers {
		byCommand[o.CommandID] = o
		if o.Status == domain.OutcomeDeadLettered {
			dead++
			if len(o.Reason) > 1100 {
				t.Errorf("outcome of %.40s: a reason of %d bytes", o.CommandID, len(o.Reason))
			}
		}
	}
	for id := range good {
		if byCommand[id].Status != domain.OutcomeAccepted {
			t.Errorf("valid command %s in the flood: %+v", id, byCommand[id])
		}
	}
	if dead != bad {
		t.Errorf("%d senders heard dead-lettered, want %d", dead, bad)
	}
	dls := readAll(t, url, "slot-commands-dlq", func(*message.Message) bool { return false }, bad)
	for _, m := range dls {
		if r := m.Metadata.Get(publisher.DLQReason); r == "" || len(r) > 1100 {
			t.Fatalf("dead letter %s: a reason of %d bytes", m.UUID, len(r))
		}
	}
	// Nothing invented: the valid commands' events and no others.
	for _, bus := range []string{"reservation", "analytics"} {
		if n := streamCount(url, bus); n != valid {
			t.Errorf("%s holds %d events, want %d (one per valid command)", bus, n, valid)
		}
	}

	rss := peakRSS(t, p.cmd.Process.Pid)
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("emitd did not exit 0: %v", err)
	}
	lines := strings.Split(p.Log(), "\n")
	longest, errors := 0, 0
	for _, l := range lines {
		longest = max(longest, len(l))
		if strings.Contains(l, "level=ERROR") {
			errors++
		}
	}
	t.Logf("daemon peak RSS %d MiB; log: %d lines, %d bytes, longest %d", rss>>20, len(lines), len(p.Log()), longest)
	// What is in flight is bounded (router.maxInFlight), and so is each
	// message (commands.maxBytes): memory must not follow the flood.
	if rss > 768<<20 {
		t.Errorf("peak RSS %d MiB", rss>>20)
	}
	if longest > 4096 {
		t.Errorf("a log line of %d bytes: lines quoting input must be bounded", longest)
	}
	if len(p.Log()) > len(all)*1024 {
		t.Errorf("%d bytes of log for %d messages", len(p.Log()), len(all))
	}
	if errors > 0 {
		t.Errorf("%d ERROR lines: dead-lettering bad input is the daemon working, not failing", errors)
	}
}
