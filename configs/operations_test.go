package configs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emitd/emitd/configs"
)

// withoutSections is the embedded default with its http and schedule
// sections cut off (they come last).
func withoutSections(t *testing.T) string {
	t.Helper()
	doc := string(configs.EmbeddedYAML())
	i := strings.Index(doc, "\nhttp:")
	if i < 0 {
		t.Fatal("embedded.yaml has no http section")
	}
	return doc[:i+1]
}

func TestOperationsDefaults(t *testing.T) {
	cfg, err := configs.Parse([]byte(withoutSections(t)))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.HTTP.ListenAddr(); got != "127.0.0.1:9464" {
		t.Errorf("http.listen left out: %q, want 127.0.0.1:9464", got)
	}
	if cfg.HTTP.MaxRelayLag != time.Minute {
		t.Errorf("http.maxRelayLag left out: %s, want 60s", cfg.HTTP.MaxRelayLag)
	}
	s := cfg.Schedule
	if !s.On() || s.Timezone != "UTC" || *s.CatchUp != time.Hour || len(s.Entries) != 3 {
		t.Fatalf("schedule left out: %+v, want the origin system's", s)
	}
	want := []string{"create-slots 0 5 * * MON-FRI CreateSlots", "unattend-slots 10 6-16 * * * UnattendSlots", "close-slots 0 7-17 * * * CloseSlots"}
	for i, e := range s.Entries {
		if got := e.Name + " " + e.Cron + " " + e.Command.Type; got != want[i] {
			t.Errorf("entry %d: %s, want %s", i, got, want[i])
		}
	}
	// The shipped default says the same, explicitly.
	shipped, err := configs.Load("")
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range shipped.Schedule.Entries {
		if got := e.Name + " " + e.Cron + " " + e.Command.Type; got != want[i] {
			t.Errorf("shipped entry %d: %s, want %s", i, got, want[i])
		}
	}

	off, err := configs.Parse([]byte(withoutSections(t) + "http:\n  listen: \"\"\nschedule:\n  enabled: false\n  catchUp: 0s\n  entries: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if off.HTTP.ListenAddr() != "" || off.Schedule.On() || *off.Schedule.CatchUp != 0 || len(off.Schedule.Entries) != 0 {
		t.Errorf("turned off: listen %q, schedule %+v", off.HTTP.ListenAddr(), off.Schedule)
	}
}

func TestOperationsProblemsNameTheField(t *testing.T) {
	doc := withoutSections(t) + `http:
  listen: "localhost"
  maxRelayLag: 10ms
schedule:
  timezone: Mars/Olympus_Mons
  catchUp: 200h
  entries:
    - {name: every-minute, cron: "61 * * * *", command: {type: CloseSlots}}
    - {name: bad-type, cron: "0 5 * * *", command: {type: Teleport}}
    - {name: not-timed, cron: "0 5 * * *", command: {type: ReserveSlot}}
    - {name: bad-data, cron: "0 5 * * *", command: {type: CreateSlots, data: {startHour: 30}}}
    - {name: bad-data, cron: "TZ=UTC 0 5 * * *", command: {type: CloseSlots}}
    - {name: "", cron: "@every 100ms", command: {type: CloseSlots}}
`
	_, err := configs.Parse([]byte(doc))
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`http.listen: "localhost": want host:port`,
		"http.maxRelayLag: must be at least 1s",
		`schedule.timezone: unknown time zone "Mars/Olympus_Mons"`,
		"schedule.catchUp: 200h0m0s must be shorter than store.retention (168h0m0s)",
		`schedule.entries[0].cron: "61 * * * *":`,
		`schedule.entries[1].command.type: "Teleport" is not a command type; want one of CreateSlots, UnattendSlots, CloseSlots`,
		`schedule.entries[2].command.type: "ReserveSlot" is not a time-based command`,
		"schedule.entries[3].command.data.startHour: must be between 0 and 23",
		`schedule.entries[4].name: "bad-data" is also schedule.entries[3].name`,
		"schedule.entries[4].cron: \"TZ=UTC 0 5 * * *\": no TZ= prefix",
		"schedule.entries[5].name: required",
		"schedule.entries[5].cron: \"@every 100ms\": @every needs at least 1s",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not report %q:\n%s", want, msg)
		}
	}
}

func TestScheduleDataAndZones(t *testing.T) {
	doc := withoutSections(t) + `schedule:
  timezone: Europe/Stockholm
  entries:
    - {name: fixed-day, cron: "@every 5s", command: {type: CreateSlots, data: {date: 2026-12-24, startHour: 9, count: 2}}}
`
	cfg, err := configs.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	entries, loc, err := cfg.ScheduleEntries()
	if err != nil {
		t.Fatal(err)
	}
	if loc.String() != "Europe/Stockholm" || len(entries) != 1 {
		t.Fatalf("zone %s, %d entries", loc, len(entries))
	}
	b, cmd, err := entries[0].Command(time.Date(2026, 12, 1, 5, 0, 0, 0, loc))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"date":"2026-12-24"`) || !strings.Contains(string(b), `"startHour":9`) || cmd.Type != "CreateSlots" {
		t.Errorf("command %s", b)
	}
}
