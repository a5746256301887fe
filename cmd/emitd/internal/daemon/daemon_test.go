package daemon_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/emitd/emitd/cmd/emitd/internal/catalog"
	"github.com/emitd/emitd/cmd/emitd/internal/catalog/catalogtest"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

func create(date string, startHour, count int) string {
	return fmt.Sprintf(`{"type":"CreateSlots","data":{"date":%q,"startHour":%d,"count":%d}}`, date, startHour, count)
}

func onSlot(typ, slotID string) string {
	return fmt.Sprintf(`{"type":%q,"data":{"slotId":%q}}`, typ, slotID)
}

func reserve(slotID, host string) string {
	return fmt.Sprintf(`{"type":"ReserveSlot","data":{"slotId":%q,"hostName":%q}}`, slotID, host)
}

// TestJourney runs docs/DOMAIN.md scenario 11 through the daemon: Create, Reserve,
// CheckIn, CheckOut, Reserve, Cancel, one command at a time, and checks the
// envelopes on both buses; every command, outcome and event is checked
// against the catalog's schemas too. It runs once per event format.
func TestJourney(t *testing.T) {
	for _, f := range []struct{ format, mode string }{
		{configs.FormatEventBridge, ""}, {configs.FormatCloudEvents, configs.ModeStructured}, {configs.FormatCloudEvents, configs.ModeBinary},
	} {
		t.Run(strings.TrimSuffix(f.format+"-"+f.mode, "-"), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Events.Format, cfg.Events.CloudEvents.Mode = f.format, f.mode
			journey(t, cfg)
		})
	}
}

func journey(t *testing.T, cfg *configs.Config) {
	cat, err := catalog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := catalogtest.New(t, cat, nil)
	r := start(t, cfg)
	r.commands = v.Command
	results := r.read(t, r.cfg.Commands.ResultsTopic)
	domainBus := r.read(t, r.cfg.Events.DomainBus)
	analyticsBus := r.read(t, r.cfg.Events.AnalyticsBus)

	ids := r.send(t, create("2026-12-01", 9, 1))
	results.waitN(t, "outcomes", 1)
	created := domainBus.waitN(t, "domain events", 1)
	_, d := envelopesOn(t, r.cfg.Events.DomainBus, created)
	slotID := d[0].Data["slotId"].(string)

	steps := []struct {
		cmd, event, status, host string
	}{
		{reserve(slotID, "Sam Person"), "RESERVED", "RESERVED", "Sam Person"},
		{onSlot("CheckIn", slotID), "CHECKED_IN", "CHECKED_IN", "Sam Person"},
		{onSlot("CheckOut", slotID), "CHECKED_OUT", "OPEN", ""},
		{reserve(slotID, "Alex Other"), "RESERVED", "RESERVED", "Alex Other"},
		{onSlot("CancelSlot", slotID), "CANCELLED", "OPEN", ""},
	}
	for i, s := range steps {
		ids = append(ids, r.send(t, s.cmd)...)
		results.waitN(t, "outcomes", i+2)
	}
	outcomeMsgs := results.waitN(t, "outcomes", len(ids))
	got := outcomes(t, outcomeMsgs)
	for _, id := range ids {
		if got[id].Status != domain.OutcomeAccepted {
			t.Fatalf("command %s: outcome %+v, want accepted", id, got[id])
		}
	}

	domMsgs, anaMsgs := domainBus.waitN(t, "domain events", 6), analyticsBus.waitN(t, "analytics events", 6)
	domEnvs, domDetails := envelopesOn(t, r.cfg.Events.DomainBus, domMsgs)
	anaEnvs, anaDetails := envelopesOn(t, r.cfg.Events.AnalyticsBus, anaMsgs)
	for _, m := range outcomeMsgs {
		v.Outcome(t, m.Payload)
	}
	for i := range domMsgs {
		v.Event(t, r.cfg.Events.DomainBus, domMsgs[i])
		v.Event(t, r.cfg.Events.AnalyticsBus, anaMsgs[i])
	}
	t.Logf("validated against the catalog: %s", v.Summary())
	wantEvents := []string{"CREATED"}
	for _, s := range steps {
		wantEvents = append(wantEvents, s.event)
	}
	for i, want := range wantEvents {
		dd, ad := domDetails[i], anaDetails[i]
		if dd.Data["event"] != want || ad.Data["event"] != want {
			t.Errorf("event %d: domain %v, analytics %v, want %s", i, dd.Data["event"], ad.Data["event"], want)
		}
		if domEnvs[i].EventBusName != r.cfg.Events.DomainBus || anaEnvs[i].EventBusName != r.cfg.Events.AnalyticsBus {
			t.Errorf("event %d: buses %q and %q", i, domEnvs[i].EventBusName, anaEnvs[i].EventBusName)
		}
		if domEnvs[i].Source != "reservation.slotreservation."+strings.ToLower(domEnvs[i].DetailType) || anaEnvs[i].Source != domEnvs[i].Source {
			t.Errorf("event %d: sources %q and %q", i, domEnvs[i].Source, anaEnvs[i].Source)
		}
		if _, has := ad.Data["slotStatus"]; has {
			t.Errorf("event %d: analytics copy leaks slotStatus", i)
		}
		if ad.Metadata.ID == dd.Metadata.ID {
			t.Errorf("event %d: analytics copy reuses the domain event id", i)
		}
		if i > 0 {
			s := steps[i-1]
			if dd.Data["slotStatus"] != s.status || dd.Data["hostName"] != s.host {
				t.Errorf("event %d (%s): status %v host %v, want %s %q", i, want, dd.Data["slotStatus"], dd.Data["hostName"], s.status, s.host)
			}
		}
		// correlation id: the outcome's, carried into every event of the command
		if o := got[ids[i]]; dd.Metadata.CorrelationID != o.CorrelationID || ad.Metadata.CorrelationID != o.CorrelationID {
			t.Errorf("event %d: correlation ids %s / %s, command's %s", i, dd.Metadata.CorrelationID, ad.Metadata.CorrelationID, o.CorrelationID)
		}
		if o := got[ids[i]]; len(o.EventIDs) != 2 || o.EventIDs[0] != dd.Metadata.ID || o.EventIDs[1] != ad.Metadata.ID {
			t.Errorf("event %d: outcome lists %v, buses carry %s and %s", i, o.EventIDs, dd.Metadata.ID, ad.Metadata.ID)
		}
	}
}

// TestRejectedCommandGivesOutcomeAndNoEvent: a business-rule refusal is
// acknowledged with a rejected outcome, not poisoned, and emits nothing.
func TestRejectedCommandGivesOutcomeAndNoEvent(t *testing.T) {
	r := start(t, testConfig(t))
	results := r.read(t, r.cfg.Commands.ResultsTopic)
	domainBus := r.read(t, r.cfg.Events.DomainBus)
	dlq := r.read(t, r.cfg.Commands.DLQTopic)

	r.send(t, create("2026-12-01", 9, 1))
	_, d := envelopes(t, domainBus.waitN(t, "domain events", 1))
	slotID := d[0].Data["slotId"].(string)

	ids := r.send(t, onSlot("CheckIn", slotID), onSlot("CheckIn", uuid.NewString()),
		create("2026-12-02", 9, 1)) // a later command proves the two were fully handled
	got := outcomes(t, results.waitN(t, "outcomes", 4))
	wantReasons := []string{
		"Slot is not in the correct status to be updated to 'CHECKED_IN' status, it was in 'OPEN' state!",
		"A slot was not found with the provided ID.",
	}
	for i, want := range wantReasons {
		if o := got[ids[i]]; o.Status != domain.OutcomeRejected || o.Reason != want || len(o.EventIDs) != 0 {
			t.Errorf("command %d: outcome %+v, want rejected %q", i, o, want)
		}
	}
	envs, _ := envelopes(t, domainBus.waitN(t, "domain events", 2))
	for _, e := range envs {
		if e.DetailType != "Created" {
			t.Errorf("a rejected command emitted %s", e.DetailType)
		}
	}
	if n := len(dlq.all()); n != 0 {
		t.Errorf("%d messages in the poison queue, want none", n)
	}
}

// TestPoisonQueue: garbage, an unknown type, an invalid command and an
// unsupported version go to the DLQ with a reason, bytes unchanged, while
// the valid commands around them are processed.
func TestPoisonQueue(t *testing.T) {
	r := start(t, testConfig(t))
	results := r.read(t, r.cfg.Commands.ResultsTopic)
	dlq := r.read(t, r.cfg.Commands.DLQTopic)

	poison := map[string]string{ // payload -> expected words in the reason
		`not json at all`: "not valid JSON",
		`{"type":"DeleteEverything","id":"` + uuid.NewString() + `"}`:                                   "unknown command type",
		`{"type":"CreateSlots","id":"` + uuid.NewString() + `","data":{"startHour":25}}`:                "startHour",
		`{"type":"CreateSlots","id":"` + uuid.NewString() + `","version":2}`:                            "version",
		`{"type":"ReserveSlot","id":"` + uuid.NewString() + `","data":{"slotId":"x","hostName":"Sam"}}`: "slotId",
	}
	var valid []string
	var msgs []*message.Message
	for payload := range poison {
		id := uuid.NewString()
		valid = append(valid, id)
		msgs = append(msgs,
			message.NewMessage(id, []byte(fmt.Sprintf(`{"type":"CreateSlots","id":%q,"data":{"date":"2026-12-03","count":1}}`, id))),
			message.NewMessage(uuid.NewString(), []byte(payload)))
	}
	r.sendRaw(t, msgs...)

	dead := dlq.waitN(t, "dead letters", len(poison))
	for _, m := range dead {
		want, ok := poison[string(m.Payload)]
		if !ok {
			t.Errorf("dead letter with payload %q: not one that was sent (bytes changed?)", m.Payload)
			continue
		}
		reason := m.Metadata.Get(publisher.DLQReason)
		if !strings.Contains(reason, want) {
			t.Errorf("payload %q: reason %q does not mention %q", m.Payload, reason, want)
		}
		if m.Metadata.Get(publisher.DLQClass) != "permanent" || m.Metadata.Get(publisher.DLQTopic) != r.cfg.Commands.Topic ||
			m.Metadata.Get(publisher.DLQDigest) != publisher.Digest(m.Payload) || m.Metadata.Get(publisher.DLQAttempts) != "1" {
			t.Errorf("payload %q: poison context %v", m.Payload, m.Metadata)
		}
	}
	got := outcomes(t, results.waitN(t, "outcomes", len(valid)+len(poison)))
	for _, id := range valid {
		if got[id].Status != domain.OutcomeAccepted {
			t.Errorf("valid command %s beside poison: outcome %+v", id, got[id])
		}
	}
	// The senders of the poison hear of it too, each under its command id
	// (or, for bytes that are not a command, its message id).
	for _, m := range dead {
		var cmd struct{ ID string }
		_ = json.Unmarshal(m.Payload, &cmd)
		id := cmd.ID
		if id == "" {
			id = m.UUID
		}
		if o := got[id]; o.Status != domain.OutcomeDeadLettered || o.Reason != m.Metadata.Get(publisher.DLQReason) {
			t.Errorf("poison %q: outcome %+v, want dead-lettered with the DLQ reason", m.Payload, o)
		}
	}
}

// TestDuplicateCommandIDYieldsNoSecondEvent: the same command delivered
// twice changes nothing the second time, and its sender gets the same answer.
func TestDuplicateCommandIDYieldsNoSecondEvent(t *testing.T) {
	r := start(t, testConfig(t))
	results := r.read(t, r.cfg.Commands.ResultsTopic)
	domainBus := r.read(t, r.cfg.Events.DomainBus)

	id := uuid.NewString()
	cmd := fmt.Sprintf(`{"type":"CreateSlots","id":%q,"data":{"date":"2026-12-04","count":2}}`, id)
	r.send(t, cmd)
	first := results.waitN(t, "outcomes", 1)
	// The same command again, as a sender retrying would put it: same command
	// id, new message id (the broker's own de-duplication by message id must
	// not be what saves us).
	r.sendRaw(t, message.NewMessage(uuid.NewString(), []byte(cmd)))
	r.send(t, create("2026-12-05", 9, 1)) // a marker after the duplicate
	all := results.waitN(t, "outcomes", 3)

	var o1, o2 domain.Outcome
	_ = json.Unmarshal(first[0].Payload, &o1)
	_ = json.Unmarshal(all[1].Payload, &o2)
	if o1.CommandID != id || o2.CommandID != id || fmt.Sprint(o1.EventIDs) != fmt.Sprint(o2.EventIDs) {
		t.Errorf("duplicate answered %+v, first answer %+v", o2, o1)
	}
	envs, _ := envelopes(t, domainBus.waitN(t, "domain events", 3))
	var created int
	for _, e := range envs {
		if e.CorrelationID == o1.CorrelationID {
			created++
		}
	}
	if created != 2 || len(envs) != 3 {
		t.Errorf("got %d events of the command (want 2) and %d in all (want 3)", created, len(envs))
	}
}
