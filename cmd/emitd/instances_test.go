package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/adapters/postgres/pgtest"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// TestThreeInstancesOnPostgres is the proof that several instances share one
// PostgreSQL store: three `emitd serve` processes on one private nats-server
// and one database, thousands of commands from concurrent senders, four
// ReserveSlot commands racing for each contested slot, and the instance that
// relays SIGKILLed mid-run and started again. Then every slot's events on the
// bus are a valid path of the slot state machine, exactly one reservation
// wins per contested slot, every accepted command's events are on both buses
// and none is there that no accepted command caused.
func TestThreeInstancesOnPostgres(t *testing.T) {
	storeURL := pgtest.Schema(t)
	srv, natsURL, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{Dir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })

	cfgs := make([]string, 3)
	for i := range cfgs {
		cfgs[i] = postgresNATSConfig(t, natsURL, storeURL)
	}
	procs := make([]*proc, 3)
	for i := range procs {
		procs[i] = startServe(t, cfgs[i])
	}

	// Phase 1: the slots. 25 days of 24 hours: 480 contested, 120 mixed.
	const days, contestedDays = 25, 20
	var creates []string
	for d := range days {
		creates = append(creates, fmt.Sprintf(`{"type":"CreateSlots","id":%q,"data":{"date":%q,"startHour":0,"count":24}}`,
			uuid.NewString(), time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, d).Format("2006-01-02")))
	}
	sendAll(t, natsURL, creates)
	var contested, mixed []string
	readAll(t, natsURL, "reservation", func(m *message.Message) bool {
		d := slotEvent(t, m)
		day, _ := time.Parse(time.RFC3339, d.StartTime)
		if day.Day()-1 < contestedDays && day.Month() == time.March {
			contested = append(contested, d.SlotID)
		} else {
			mixed = append(mixed, d.SlotID)
		}
		return len(contested)+len(mixed) == days*24
	})

	// Phase 2: four senders at once. On a contested slot each sends a
	// ReserveSlot of its own; on a mixed slot they send Reserve, CheckIn,
	// CheckOut, CancelSlot and OpenSlot, which meet in any order.
	type cmd struct{ slot, typ, host string }
	sent := map[string]cmd{} // command id -> what it was
	perSender := make([][]string, 4)
	for _, slot := range contested {
		for s := range perSender {
			id, host := uuid.NewString(), fmt.Sprintf("Host %d", s)
			sent[id] = cmd{slot, "ReserveSlot", host}
			perSender[s] = append(perSender[s], fmt.Sprintf(`{"type":"ReserveSlot","id":%q,"data":{"slotId":%q,"hostName":%q}}`, id, slot, host))
		}
	}
	for _, slot := range mixed {
		for s, typ := range []string{"ReserveSlot", "CheckIn", "ReserveSlot", "CancelSlot", "CheckOut", "OpenSlot", "CheckIn", "ReserveSlot"} {
			id := uuid.NewString()
			data := fmt.Sprintf(`{"slotId":%q}`, slot)
			host := ""
			if typ == "ReserveSlot" {
				host = fmt.Sprintf("Host %d", s)
				data = fmt.Sprintf(`{"slotId":%q,"hostName":%q}`, slot, host)
			}
			sent[id] = cmd{slot, typ, host}
			perSender[s%4] = append(perSender[s%4], fmt.Sprintf(`{"type":%q,"id":%q,"data":%s}`, typ, id, data))
		}
	}
	var wg sync.WaitGroup
	for _, cmds := range perSender {
		rand.Shuffle(len(cmds), func(i, j int) { cmds[i], cmds[j] = cmds[j], cmds[i] })
		wg.Add(1)
		go func() { defer wg.Done(); sendAll(t, natsURL, cmds) }()
	}
	wg.Wait()
	total := len(creates) + len(sent)
	t.Logf("%d commands: %d CreateSlots, %d on %d contested slots, %d on %d mixed slots",
		total, len(creates), len(contested)*4, len(contested), len(sent)-len(contested)*4, len(mixed))

	// Kill the instance that relays once a good part has been decided, and
	// start it again: another must take the relay over.
	waitStream(t, natsURL, "slot-command-results", len(creates)+len(sent)/4)
	relaying := -1
	for i, p := range procs {
		if strings.Contains(p.Log(), "relay events: this instance relays") {
			relaying = i
		}
	}
	if relaying < 0 {
		t.Fatal("no instance says it relays the events")
	}
	if err := procs[relaying].stop(t, syscall.SIGKILL); err == nil {
		t.Fatal("emitd exited 0 on SIGKILL?")
	}
	procs[relaying] = startServe(t, cfgs[relaying])

	// Every command has its outcome, none dead-lettered.
	var results []*message.Message
	seen := map[string]bool{}
	results = readAll(t, natsURL, "slot-command-results", func(m *message.Message) bool {
		var o domain.Outcome
		_ = json.Unmarshal(m.Payload, &o)
		seen[o.CommandID] = true
		return len(seen) >= total
	})
	outs := distinctOutcomes(t, results)
	if n := streamCount(natsURL, "slot-commands-dlq"); n != 0 {
		t.Errorf("%d commands dead-lettered", n)
	}
	expected := map[string]string{} // event id -> bus
	for id := range sent {
		o := outs[id]
		switch o.Status {
		case domain.OutcomeAccepted:
			if len(o.EventIDs) != 2 {
				t.Fatalf("command %s accepted with events %v", id, o.EventIDs)
			}
			expected[o.EventIDs[0]], expected[o.EventIDs[1]] = "reservation", "analytics"
		case domain.OutcomeRejected:
			if !strings.Contains(o.Reason, "not in the correct status") {
				t.Errorf("command %s rejected for %q", id, o.Reason)
			}
		default:
			t.Fatalf("command %s: %+v", id, o)
		}
	}

	// The buses: everything expected and nothing else (CreateSlots' events
	// are checked as part of the paths below).
	created := 0
	byID := map[string]slotData{}
	var order []string // domain event ids in stream order, first delivery only
	for _, bus := range []string{"reservation", "analytics"} {
		least := days * 24
		for _, b := range expected {
			if b == bus {
				least++
			}
		}
		n, want := 0, streamCountEventually(t, natsURL, bus, least)
		msgs := readAll(t, natsURL, bus, func(*message.Message) bool { n++; return n >= want })
		ids := map[string]bool{}
		for _, m := range msgs {
			id := m.Metadata.Get(publisher.MetaEventID)
			if ids[id] {
				continue // a repeat, as at least once allows
			}
			ids[id] = true
			d := slotEvent(t, m)
			if d.Event == "CREATED" {
				if bus == "reservation" {
					created++
				}
				continue
			}
			if expected[id] != bus {
				t.Errorf("event %s (%s) on %s: no accepted command caused it (invented)", id, d.Event, bus)
			}
			if bus == "reservation" {
				byID[id] = d
				order = append(order, id)
			}
		}
		for id, b := range expected {
			if b == bus && !ids[id] {
				t.Errorf("event %s of an accepted command never reached %s (lost)", id, bus)
			}
		}
		t.Logf("%s: %d messages, %d distinct events", bus, len(msgs), len(ids))
	}
	if created != days*24 {
		t.Errorf("%d Created events, want %d", created, days*24)
	}

	// Each accepted command's event is the one its type makes, on its slot.
	winners := map[string][]string{} // contested slot -> accepted hosts
	for id, c := range sent {
		o := outs[id]
		if o.Status != domain.OutcomeAccepted {
			continue
		}
		d := byID[o.EventIDs[0]]
		if d.SlotID != c.slot || d.Event != eventOf[c.typ] || (c.typ == "ReserveSlot" && d.HostName != c.host) {
			t.Errorf("command %s (%s on %s) made %+v", id, c.typ, c.slot, d)
		}
		if c.typ == "ReserveSlot" {
			winners[c.slot] = append(winners[c.slot], c.host)
		}
	}
	for _, slot := range contested {
		if len(winners[slot]) != 1 {
			t.Errorf("contested slot %s: %d reservations won (%v), want exactly one", slot, len(winners[slot]), winners[slot])
		}
	}

	// Every slot's events, in bus order, are a path of the state machine.
	state := map[string]string{}
	for _, slot := range append(contested, mixed...) {
		state[slot] = "OPEN"
	}
	for _, id := range order {
		d := byID[id]
		if err := step(state[d.SlotID], d); err != nil {
			t.Errorf("slot %s: %v", d.SlotID, err)
		}
		state[d.SlotID] = d.SlotStatus
	}

	for i, p := range procs {
		if err := p.stop(t, syscall.SIGTERM); err != nil {
			t.Errorf("instance %d did not exit 0 on SIGTERM: %v\n%s", i, err, p.Log())
		}
	}
}

// postgresNATSConfig is configs/nats.yaml on the NATS server at natsURL with
// its state in the PostgreSQL database at storeURL.
func postgresNATSConfig(t *testing.T, natsURL, storeURL string) string {
	t.Helper()
	b, err := os.ReadFile("../../configs/nats.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := strings.Replace(string(b), "dataDir: ./data", "dataDir: "+filepath.Join(dir, "data"), 1)
	s = strings.Replace(s, "url: nats://127.0.0.1:4222", "url: "+natsURL, 1)
	s = strings.Replace(s, "driver: sqlite", fmt.Sprintf("url: %q\n  driver: postgres", storeURL), 1)
	s = offOperations(t, s)
	path := filepath.Join(dir, "emitd.yaml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// sendAll publishes commands to the commands subject, in order.
func sendAll(t *testing.T, url string, commands []string) {
	pub, err := natsjs.NewPublisher(natsjs.Config{URL: url})
	if err != nil {
		t.Error(err)
		return
	}
	defer pub.Close()
	msgs := make([]*message.Message, len(commands))
	for i, c := range commands {
		msgs[i] = message.NewMessage(uuid.NewString(), []byte(c))
	}
	if err := pub.Publish("slot-commands", msgs...); err != nil {
		t.Error(err)
	}
}

// streamCountEventually is the count of a stream once it holds at least
// least messages and has stopped growing.
func streamCountEventually(t *testing.T, url, topic string, least int) int {
	t.Helper()
	waitStream(t, url, topic, least)
	n := streamCount(url, topic)
	for {
		time.Sleep(time.Second)
		m := streamCount(url, topic)
		if m == n {
			return n
		}
		n = m
	}
}

type slotData struct {
	Event      string `json:"event"`
	SlotID     string `json:"slotId"`
	SlotStatus string `json:"slotStatus"`
	HostName   string `json:"hostName"`
	StartTime  string `json:"startTime"`
}

// slotEvent is the data of an event message (the analytics copy has no
// slotStatus).
func slotEvent(t *testing.T, m *message.Message) slotData {
	t.Helper()
	var entry struct{ Detail string }
	var detail struct{ Data slotData }
	if err := json.Unmarshal(m.Payload, &entry); err != nil {
		t.Fatalf("event %q: %v", m.Payload, err)
	}
	if err := json.Unmarshal([]byte(entry.Detail), &detail); err != nil {
		t.Fatalf("detail %q: %v", entry.Detail, err)
	}
	return detail.Data
}

var eventOf = map[string]string{
	"ReserveSlot": "RESERVED", "CancelSlot": "CANCELLED", "CheckIn": "CHECKED_IN",
	"CheckOut": "CHECKED_OUT", "OpenSlot": "OPENED",
}

// step checks one event against the state its slot was in (docs/DOMAIN.md).
func step(from string, d slotData) error {
	allowed := map[string]struct{ from, to string }{
		"RESERVED":    {"OPEN", "RESERVED"},
		"CANCELLED":   {"RESERVED", "OPEN"},
		"CHECKED_IN":  {"RESERVED", "CHECKED_IN"},
		"CHECKED_OUT": {"CHECKED_IN", "OPEN"},
		"UNATTENDED":  {"RESERVED", "OPEN"},
	}
	switch d.Event {
	case "OPENED":
		if from == "CLOSED" || d.SlotStatus != "OPEN" {
			return fmt.Errorf("OPENED from %s to %s", from, d.SlotStatus)
		}
	case "CLOSED":
		if from == "CLOSED" || d.SlotStatus != "CLOSED" {
			return fmt.Errorf("CLOSED from %s to %s", from, d.SlotStatus)
		}
	default:
		a, ok := allowed[d.Event]
		if !ok {
			return fmt.Errorf("unexpected event %s", d.Event)
		}
		if from != a.from || d.SlotStatus != a.to {
			return fmt.Errorf("%s from %s to %s: the state machine goes %s -> %s", d.Event, from, d.SlotStatus, a.from, a.to)
		}
	}
	if (d.SlotStatus == "OPEN") != (d.HostName == "") {
		return fmt.Errorf("%s: status %s with host %q", d.Event, d.SlotStatus, d.HostName)
	}
	return nil
}
