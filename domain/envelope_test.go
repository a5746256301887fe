package domain

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

const goldenCorrelation = "a2b4c6d8-1111-4222-8333-944455556666"

func testFactory() EnvelopeFactory {
	return EnvelopeFactory{Meta: DefaultMetadata(), DomainBus: "reservation", AnalyticsBus: "analytics", NewID: seqIDs("e0e0e0e0")}
}

// goldenChange produces each event the way the system does: a command
// decided against a stored slot, so the goldens also pin the aggregate's
// output. The slot starts 10:00 on 2026-11-25 as in docs/DOMAIN.md's example.
func goldenChange(t *testing.T, ev EventName) (Change, time.Time) {
	t.Helper()
	var (
		c   Command
		src = newMemSource()
		now = at(9, 0)
	)
	stored := func(st Status, host string) { src.slots[idA] = slotAt(idA, 10, st, host) }
	switch ev {
	case EventCreated:
		c = cmd(t, CmdCreateSlots, `{"date":"2026-11-25","startHour":10,"count":1}`)
	case EventReserved:
		stored(StatusOpen, "")
		c = cmd(t, CmdReserveSlot, `{"slotId":"`+idA+`","hostName":"Sam Person"}`)
	case EventCancelled:
		stored(StatusReserved, "Sam Person")
		c = cmd(t, CmdCancelSlot, ref(idA))
	case EventCheckedIn:
		stored(StatusReserved, "Sam Person")
		c, now = cmd(t, CmdCheckIn, ref(idA)), at(10, 3)
	case EventCheckedOut:
		stored(StatusCheckedIn, "Sam Person")
		c, now = cmd(t, CmdCheckOut, ref(idA)), at(10, 45)
	case EventOpened:
		stored(StatusCheckedIn, "Sam Person")
		c, now = cmd(t, CmdOpenSlot, ref(idA)), at(10, 50)
	case EventClosed:
		stored(StatusOpen, "")
		c, now = cmd(t, CmdCloseSlots, ""), at(11, 0)
	case EventUnattended:
		stored(StatusReserved, "Sam Person")
		c, now = cmd(t, CmdUnattendSlots, ""), at(10, 10)
	default:
		t.Fatalf("no golden recipe for %s", ev)
	}
	d, err := Aggregate{NewID: func() string { return idA }}.Decide(context.Background(), c, now, src)
	return one(t, d, err), now
}

// docs/DOMAIN.md scenario 10.
func TestGoldenEnvelopes(t *testing.T) {
	for _, ev := range EventNames() {
		t.Run(string(ev), func(t *testing.T) {
			ch, now := goldenChange(t, ev)
			if ch.Event != ev {
				t.Fatalf("recipe made %s", ch.Event)
			}
			envs, err := testFactory().Events(Decision{Changes: []Change{ch}}, goldenCorrelation, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(envs) != 2 {
				t.Fatalf("got %d envelopes, want domain + analytics", len(envs))
			}
			dom, an := envs[0], envs[1]
			for _, e := range envs {
				if e.CorrelationID != goldenCorrelation || e.SlotID != idA || e.Event != ev {
					t.Errorf("envelope facts %+v", e)
				}
			}
			if an.ID == dom.ID {
				t.Errorf("analytics id %s leaks the domain id", an.ID)
			}
			name := strings.ToLower(string(ev))
			checkGolden(t, name+".json", dom, now)
			checkGolden(t, name+".analytics.json", an, now)
			checkAnalyticsIsDomainCopy(t, dom, an)
		})
	}
}

var (
	reTimestamp = regexp.MustCompile(`"timestamp":"([^"]*)"`)
	reEpoch     = regexp.MustCompile(`"timestampEpoch":"([^"]*)"`)
	reID        = regexp.MustCompile(`"id":"([^"]*)"`)
	reStartTime = regexp.MustCompile(`"startTime":"([^"]*)"`)
	reMillis    = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
)

// checkGolden compares env with the golden file, after checking and masking
// the three values that differ on every run. Masking works on the Detail
// text itself, so the golden also pins key order and formatting.
func checkGolden(t *testing.T, file string, env Envelope, now time.Time) {
	t.Helper()
	detail := env.Detail
	ts := only(t, reTimestamp, detail)
	if !reMillis.MatchString(ts) || ts != now.UTC().Format(timestampLayout) {
		t.Errorf("timestamp %q: want %s with milliseconds, UTC", ts, now.UTC().Format(timestampLayout))
	}
	if epoch := only(t, reEpoch, detail); epoch != strconv.FormatInt(now.UnixMilli(), 10) {
		t.Errorf("timestampEpoch %q, want %d", epoch, now.UnixMilli())
	}
	// startTime is written like timestamp (JavaScript's toISOString()):
	// consumers compare the two as text.
	if st := only(t, reStartTime, detail); !reMillis.MatchString(st) {
		t.Errorf("startTime %q: want UTC with exactly 3 fraction digits, like 2026-11-25T10:00:00.000Z", st)
	}
	if id := only(t, reID, detail); id != env.ID || checkSlotID(id) != nil {
		t.Errorf("metadata.id %q: want a UUID equal to Envelope.ID %q", id, env.ID)
	}
	env.Detail = reTimestamp.ReplaceAllString(detail, `"timestamp":"IGNORED"`)
	env.Detail = reEpoch.ReplaceAllString(env.Detail, `"timestampEpoch":"IGNORED"`)
	env.Detail = reID.ReplaceAllString(env.Detail, `"id":"IGNORED"`)
	got, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", file)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./domain/ -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (go test ./domain/ -update rewrites it)\n got: %s\nwant: %s", path, got, want)
	}
}

func only(t *testing.T, re *regexp.Regexp, s string) string {
	t.Helper()
	m := re.FindAllStringSubmatch(s, -1)
	if len(m) != 1 {
		t.Fatalf("%s: %d matches in %s, want 1", re, len(m), s)
	}
	return m[0][1]
}

// The analytics Detail is the domain Detail with another id and without
// slotStatus: same bytes otherwise, same key order.
func checkAnalyticsIsDomainCopy(t *testing.T, dom, an Envelope) {
	t.Helper()
	want := strings.Replace(dom.Detail, `"id":"`+dom.ID+`"`, `"id":"`+an.ID+`"`, 1)
	want = regexp.MustCompile(`,"slotStatus":"[A-Z_]*"`).ReplaceAllString(want, "")
	if an.Detail != want {
		t.Errorf("analytics detail\n got: %s\nwant: %s", an.Detail, want)
	}
	if an.EventBusName != "analytics" || an.Source != dom.Source || an.DetailType != dom.DetailType {
		t.Errorf("analytics entry %+v, domain %+v", an, dom)
	}
}

func TestMetadataKeyOrder(t *testing.T) {
	env, err := testFactory().Domain(Change{Slot: slotAt(idA, 10, StatusOpen, ""), Event: EventOpened}, "k", at(9, 0))
	if err != nil {
		t.Fatal(err)
	}
	var det struct{ Metadata, Data json.RawMessage }
	if err := json.Unmarshal([]byte(env.Detail), &det); err != nil {
		t.Fatal(err)
	}
	want := "timestamp timestampEpoch id correlationId version lifecycleStage domain system service team hostPlatform owner region jurisdiction tags dataSensitivity"
	if got := strings.Join(objectKeys(t, det.Metadata), " "); got != want {
		t.Errorf("metadata keys\n got: %s\nwant: %s", got, want)
	}
	if got := strings.Join(objectKeys(t, det.Data), " "); got != "event slotId slotStatus hostName startTime" {
		t.Errorf("data keys: %s", got)
	}
	if !strings.HasPrefix(env.Detail, `{"metadata":`) {
		t.Errorf("detail must start with metadata: %s", env.Detail)
	}
}

// objectKeys lists a JSON object's keys in document order.
func objectKeys(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	var keys []string
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestEventsOrderAndSharedCorrelation(t *testing.T) {
	d := Decision{Changes: []Change{
		{Slot: slotAt(idA, 9, StatusClosed, ""), Event: EventClosed},
		{Slot: slotAt(idB, 10, StatusClosed, ""), Event: EventClosed},
	}}
	f := testFactory()
	f.NewID = nil // the real uuid minting
	envs, err := f.Events(d, "", at(12, 0))
	if err != nil {
		t.Fatal(err)
	}
	wantBus := []string{"reservation", "analytics", "reservation", "analytics"}
	wantSlot := []string{idA, idA, idB, idB}
	ids := map[string]bool{}
	for i, e := range envs {
		if e.EventBusName != wantBus[i] || e.SlotID != wantSlot[i] {
			t.Errorf("envelope %d: bus %s slot %s", i, e.EventBusName, e.SlotID)
		}
		if e.CorrelationID == "" || e.CorrelationID != envs[0].CorrelationID {
			t.Errorf("envelope %d: correlation %q, want one shared new id", i, e.CorrelationID)
		}
		if ids[e.ID] || checkSlotID(e.ID) != nil {
			t.Errorf("envelope %d: id %q repeated or not a UUID", i, e.ID)
		}
		ids[e.ID] = true
	}
	if len(envs) != 4 {
		t.Fatalf("got %d envelopes, want 4", len(envs))
	}
	if envs, err := f.Events(Decision{}, "k", at(12, 0)); err != nil || len(envs) != 0 {
		t.Fatalf("empty decision: %v %v", envs, err)
	}
}

func TestFactoryRefusesWhatItCannotMake(t *testing.T) {
	ch := Change{Slot: slotAt(idA, 10, StatusOpen, ""), Event: EventOpened}
	f := testFactory()
	if _, err := f.Domain(Change{Slot: ch.Slot, Event: "DELETED"}, "k", at(9, 0)); err == nil {
		t.Error("event outside the catalog: no error")
	}
	if _, err := DetailTypeOf("DELETED"); err == nil {
		t.Error("DetailTypeOf(DELETED): no error")
	}
	bad := f
	bad.Meta.Domain = ""
	if _, err := bad.Domain(ch, "k", at(9, 0)); err == nil || !strings.Contains(err.Error(), "metadata.domain") {
		t.Errorf("invalid metadata: %v", err)
	}
	bad = f
	bad.DomainBus = ""
	if _, err := bad.Domain(ch, "k", at(9, 0)); err == nil {
		t.Error("no domain bus: no error")
	}
	dom, err := f.Domain(ch, "k", at(9, 0))
	if err != nil {
		t.Fatal(err)
	}
	an, err := f.Analytics(dom)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Analytics(an); err == nil {
		t.Error("analytics of an analytics envelope: no error")
	}
	same := f
	same.NewID = func() string { return dom.ID }
	if _, err := same.Analytics(dom); err == nil {
		t.Error("analytics id equal to the domain id: no error")
	}
}

func TestEmptyHostAndUnknownStart(t *testing.T) {
	s := slotAt(idA, 10, StatusOpen, "")
	s.TimeSlot = TimeSlot{}
	env, err := testFactory().Domain(Change{Slot: s, Event: EventOpened}, "k", at(9, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(env.Detail, `"hostName":"","startTime":""}}`) {
		t.Errorf("detail %s: want empty hostName and startTime", env.Detail)
	}
}

// startTime is toISOString()'s form whatever the slot's time zone and
// precision: UTC, exactly 3 fraction digits, Z.
func TestStartTimeIsUTCWithMilliseconds(t *testing.T) {
	s := slotAt(idA, 10, StatusOpen, "")
	s.TimeSlot.StartTime = time.Date(2050, 1, 1, 8, 0, 0, 123456789, time.FixedZone("EET", 2*3600))
	env, err := testFactory().Domain(Change{Slot: s, Event: EventOpened}, "k", at(9, 0))
	if err != nil {
		t.Fatal(err)
	}
	if want := `"startTime":"2050-01-01T06:00:00.123Z"`; !strings.Contains(env.Detail, want) {
		t.Errorf("detail %s: want %s", env.Detail, want)
	}
}

// Events makes each analytics copy from the detail it has just made;
// Analytics makes it from a domain envelope's JSON. The bytes are the same.
func TestEventsAndAnalyticsMakeTheSameCopy(t *testing.T) {
	ids := 0
	f := EnvelopeFactory{Meta: DefaultMetadata(), DomainBus: "reservation", AnalyticsBus: "analytics",
		NewID: func() string { ids++; return fmt.Sprintf("id-%d", ids) }}
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	start := now.Add(time.Hour)
	c := Change{Event: EventReserved, Slot: Slot{SlotID: "0128c8d4-0000-4000-8000-000000000001", HostName: "Sam & <Person>",
		Status: StatusReserved, TimeSlot: TimeSlot{StartTime: start, EndTime: start.Add(time.Hour)}}}
	envs, err := f.Events(Decision{Changes: []Change{c}}, "corr-1", now)
	if err != nil {
		t.Fatal(err)
	}
	ids = 1 // Analytics mints the same next id the copy got
	again, err := f.Analytics(envs[0])
	if err != nil {
		t.Fatal(err)
	}
	if again != envs[1] {
		t.Fatalf("Events' copy:\n%+v\nAnalytics:\n%+v", envs[1], again)
	}
}
