package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/cmd/emitd/internal/testbin"
)

// The schedule built in, with @every: Closed events appear on the bus and
// nobody sends a command. The daemon logs JSON only, the embedded broker's
// lines included; `emitd schedule` lists the entries and `emitd status`
// finds all well.
func TestScheduleEveryClosesWithoutSender(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "embedded.yaml", nil, embeddedPort, fmt.Sprintf("port: %d", testbin.FreePort(t)),
		scheduleOff, "schedule:\n  enabled: true",
		`    - {name: close-slots,    cron: "0 7-17 * * *",    command: {type: CloseSlots}}`,
		`    - {name: close-slots,    cron: "@every 2s",       command: {type: CloseSlots}}`+"\n"+
			`    - {name: old-slots,      cron: "@every 3s",       command: {type: CreateSlots, data: {date: 2026-01-05, startHour: 9, count: 1}}}`)
	d := s.start(`"msg":"emitd serving"`, "serve", "--config", s.cfg, "--log-format", "json", "--log-level", "debug")
	dom := tailEvents(s.tail("reservation", "--from-beginning"), s.validator(), "reservation")
	for seen := map[string]bool{}; !seen["Closed"]; {
		e := dom(t, "an event of the schedule")
		seen[e.DetailType] = true
	}

	out, errOut, code := s.runCLI("schedule", "--config", s.cfg)
	if code != 0 || !strings.Contains(out, "close-slots") || !strings.Contains(out, "every 2s") || !strings.Contains(out, "unattend-slots") {
		t.Errorf("emitd schedule: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = s.runCLI("status", "--config", s.cfg)
	if code != 0 || !strings.Contains(out, "serve:        ready") || !strings.Contains(out, "all is well") {
		t.Errorf("emitd status: exit %d, want 0\n%s%s", code, out, errOut)
	}
	d.stop(t)

	server := 0
	for _, line := range strings.Split(strings.TrimSpace(d.log()), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("--log-format json printed a line that is not a JSON object: %q", line)
		}
		if obj["component"] == "nats-server" {
			server++
		}
	}
	if server == 0 {
		t.Error("no line of the embedded nats-server in the log")
	}
}

// `emitd status` exits 1 while a dead letter waits, on the poison queue and
// then in the store, and 0 once it is purged; it moves nothing itself.
func TestStatusExitCodes(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "embedded.yaml", nil, embeddedPort, fmt.Sprintf("port: %d", testbin.FreePort(t)))
	d := s.serve()
	results := s.tail("", "--from-beginning")
	s.runCLI("send", "--config", s.cfg, "--raw", "not a command")
	results.next(t, "the dead-lettered outcome")
	deadline := 0
	for {
		out, _, code := s.runCLI("status", "--config", s.cfg)
		if code == 1 && strings.Contains(out, "1 dead letters on the poison queue") {
			break
		}
		if deadline++; deadline > 200 {
			t.Fatalf("status never reported the poison queue (exit %d):\n%s", code, out)
		}
	}
	if out, errOut, code := s.runCLI("dlq", "list", "--config", s.cfg); code != 0 || !strings.Contains(out, `"reasonCode":"malformed"`) {
		t.Fatalf("dlq list: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code := s.runCLI("status", "--config", s.cfg)
	if code != 1 || !strings.Contains(out, "command/malformed 1") || !strings.Contains(out, "poison queue: slot-commands-dlq: 0 waiting") {
		t.Fatalf("status with a dead letter in the store: exit %d\n%s", code, out)
	}
	if _, errOut, code := s.runCLI("dlq", "purge", "--all", "--yes", "--config", s.cfg); code != 0 {
		t.Fatalf("purge: %d %s", code, errOut)
	}
	if out, _, code = s.runCLI("status", "--config", s.cfg); code != 0 {
		t.Fatalf("status once all is well: exit %d\n%s", code, out)
	}
	d.stop(t)
	if out, _, code = s.runCLI("status", "--config", s.cfg); code != 1 || !strings.Contains(out, "not reachable") {
		t.Errorf("status with serve stopped: exit %d\n%s", code, out)
	}
}

// embeddedPort is the port line of the shipped embedded.yaml.
var embeddedPort = fmt.Sprintf("port: %d", natsjs.DefaultEmbeddedPort)
