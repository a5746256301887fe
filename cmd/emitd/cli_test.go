package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTour is the README's two-minute tour, typed as a user would: serve,
// send a CreateSlots and a ReserveSlot, tail both buses, see a rejection.
func TestTour(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, freePort(t))
	p := startServe(t, cfg)

	out, errOut, code := run(t, "", "send", "--config", cfg, `{"type":"CreateSlots","data":{"date":"2026-12-01","count":2}}`)
	if code != 0 || len(strings.Fields(out)) != 1 {
		t.Fatalf("send CreateSlots: code %d, out %q, err %q", code, out, errOut)
	}
	// tail says nothing on stderr when all is well: no ERROR line at exit
	// (it once logged a failed ack of what it had read).
	quiet := func(what, stderr string) {
		t.Helper()
		if strings.Contains(stderr, "level=ERROR") {
			t.Errorf("%s logged an error:\n%s", what, stderr)
		}
	}
	slot, tailErr, code := run(t, "", "tail", "--config", cfg, "--bus", "reservation", "--from-beginning", "-n", "1", "--timeout", "30s", "--field", "data.slotId")
	quiet("tail --field", tailErr)
	slot = strings.TrimSpace(slot)
	if code != 0 || len(slot) != 36 {
		t.Fatalf("tail --field data.slotId: code %d, %q", code, slot)
	}
	if _, errOut, code = run(t, "", "send", "--config", cfg, `{"type":"ReserveSlot","data":{"slotId":"`+slot+`","hostName":"Sam Person"}}`); code != 0 {
		t.Fatalf("send ReserveSlot: %d %s", code, errOut)
	}
	// A rejection: checking out of a slot nobody checked in to.
	if _, errOut, code = run(t, "", "send", "--config", cfg, `{"type":"CheckOut","data":{"slotId":"`+slot+`"}}`); code != 0 {
		t.Fatalf("send CheckOut: %d %s", code, errOut)
	}

	dom, tailErr, code := run(t, "", "tail", "--config", cfg, "--bus", "reservation", "--from-beginning", "-n", "3", "--timeout", "30s")
	quiet("tail --bus reservation", tailErr)
	envs := jsonLines[map[string]string](t, dom)
	if code != 0 || len(envs) != 3 || envs[2]["DetailType"] != "Reserved" || envs[2]["EventBusName"] != "reservation" {
		t.Fatalf("domain bus: code %d\n%s", code, dom)
	}
	ana, tailErr, code := run(t, "", "tail", "--config", cfg, "--bus", "analytics", "--from-beginning", "-n", "3", "--timeout", "30s")
	quiet("tail --bus analytics", tailErr)
	aenvs := jsonLines[map[string]string](t, ana)
	if code != 0 || len(aenvs) != 3 || aenvs[2]["DetailType"] != "Reserved" || strings.Contains(aenvs[2]["Detail"], "slotStatus") {
		t.Fatalf("analytics bus: code %d\n%s", code, ana)
	}
	res, tailErr, code := run(t, "", "tail", "--config", cfg, "--results", "--from-beginning", "-n", "3", "--timeout", "30s")
	quiet("tail --results", tailErr)
	outs := jsonLines[map[string]any](t, res)
	if code != 0 || len(outs) != 3 || outs[2]["status"] != "rejected" ||
		outs[2]["reason"] != "Slot is not in the correct status to be updated to 'CHECKED_OUT' status, it was in 'RESERVED' state!" {
		t.Fatalf("results: code %d\n%s", code, res)
	}

	// Fewer than -n before the timeout is a failure a script can see.
	if _, errOut, code = run(t, "", "tail", "--config", cfg, "--bus", "reservation", "-n", "1", "--timeout", "300ms"); code != 1 || !strings.Contains(errOut, "timed out") {
		t.Errorf("tail timeout: code %d, %q", code, errOut)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.Log())
	}
	if !strings.Contains(p.Log(), "emitd stopped cleanly") {
		t.Errorf("no clean stop in the log:\n%s", p.Log())
	}
}

func TestSendRefusesInvalidCommands(t *testing.T) {
	cfg := writeConfig(t, t.TempDir(), freePort(t)) // nothing serves: nothing may be sent anyway
	_, errOut, code := run(t, "", "send", "--config", cfg,
		`{"type":"CreateSlots","data":{"startHour":25}}`, `{"type":"Teleport"}`)
	if code != 2 || !strings.Contains(errOut, "nothing sent") || !strings.Contains(errOut, "command 1: invalid command: data.startHour") ||
		!strings.Contains(errOut, `command 2: invalid command: type: unknown command type "Teleport"`) {
		t.Fatalf("code %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = run(t, "", "send", "--config", cfg, `{"type":"CloseSlots"}`)
	if code != 1 || !strings.Contains(errOut, "is `emitd serve` running") {
		t.Fatalf("send without a daemon: code %d, stderr:\n%s", code, errOut)
	}
}

func TestSecondServeOnSameDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, freePort(t))
	startServe(t, cfg)
	other := writeConfig(t, t.TempDir(), freePort(t)) // another port, same data dir
	b, _ := os.ReadFile(other)
	os.WriteFile(other, []byte(strings.Replace(string(b), filepath.Join(filepath.Dir(other), "data"), filepath.Join(dir, "data"), 1)), 0o644)
	_, errOut, code := run(t, "", "serve", "--config", other)
	if code != 1 || !strings.Contains(errOut, "data directory is in use by another emitd serve") {
		t.Fatalf("second serve: code %d, stderr:\n%s", code, errOut)
	}
}

func TestConfigValidate(t *testing.T) {
	out, _, code := run(t, "", "config", "validate")
	if code != 0 || !strings.Contains(out, "configuration OK: (built-in embedded default)") {
		t.Fatalf("built-in: %d %s", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("commands:\n  broker: kafka\n  topik: x\nmetadata:\n  lifecycleStage: prod\n"), 0o644)
	_, errOut, code := run(t, "", "config", "validate", "--config", bad)
	for _, want := range []string{"commands.topik: unknown field (line 3)", "commands.topic: required", "brokers.kafka: required",
		"metadata.lifecycleStage", "events.broker: required"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("validate does not report %q:\n%s", want, errOut)
		}
	}
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	// serve refuses the same way, before opening anything
	if _, errOut2, code := run(t, "", "serve", "--config", bad); code != 2 || !strings.Contains(errOut2, "commands.topik") {
		t.Errorf("serve on an invalid configuration: code %d\n%s", code, errOut2)
	}
}

// TestDeadLetterCommands: the operator's round trip on the poison queue, as
// typed: list, show, a dry run, purge after asking.
func TestDeadLetterCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, freePort(t))
	p := startServe(t, cfg)
	if _, errOut, code := run(t, "", "send", "--config", cfg, "--raw", "not a command", "--raw", `{"type":"Teleport","id":"x"}`); code != 0 {
		t.Fatalf("send --raw: %d %s", code, errOut)
	}
	var list []map[string]any
	for deadline := time.Now().Add(30 * time.Second); len(list) < 2 && time.Now().Before(deadline); {
		out, errOut, code := run(t, "", "dlq", "list", "--config", cfg)
		if code != 0 {
			t.Fatalf("dlq list: %d %s", code, errOut)
		}
		list = jsonLines[map[string]any](t, out)
	}
	if len(list) != 2 {
		t.Fatalf("dlq list: %v", list)
	}
	var garbage string
	for _, d := range list {
		if d["kind"] != "command" || d["errorClass"] != "permanent" || d["origin"] != "slot-commands" || d["attempts"] != 1.0 || d["replays"] != 0.0 {
			t.Errorf("dead letter %v", d)
		}
		if strings.Contains(d["reason"].(string), "not valid JSON") {
			garbage = d["id"].(string)
		}
	}
	show, _, code := run(t, "", "dlq", "show", "--config", cfg, garbage)
	if code != 0 || !strings.Contains(show, `"payload": "not a command"`) {
		t.Fatalf("dlq show: %d\n%s", code, show)
	}
	out, errOut, code := run(t, "", "replay", "--config", cfg, "--dry-run")
	if code != 0 || strings.Count(out, `"action":"would-replay"`) != 2 || !strings.Contains(errOut, "would replay 2, skipped 0, failed 0") {
		t.Fatalf("replay --dry-run: %d\n%s\n%s", code, out, errOut)
	}
	if _, errOut, code = run(t, "n\n", "dlq", "purge", "--config", cfg, "--id", garbage); code != 1 || !strings.Contains(errOut, "remove 1 dead letters for good? [y/N]") {
		t.Fatalf("purge answered no: %d %s", code, errOut)
	}
	if out, _, code = run(t, "", "dlq", "purge", "--config", cfg, "--reason", "unknown command type", "--yes"); code != 0 || strings.TrimSpace(out) != "removed 1 dead letters" {
		t.Fatalf("purge --yes: %d %q", code, out)
	}
	out, _, _ = run(t, "", "dlq", "list", "--config", cfg, "--no-sync")
	if left := jsonLines[map[string]any](t, out); len(left) != 1 || left[0]["id"] != garbage {
		t.Fatalf("after purge: %v", left)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Run anywhere else, dlq refuses instead of creating a stray store.
	elsewhere := filepath.Join(t.TempDir(), "other.yaml")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(elsewhere, []byte(strings.Replace(string(b), filepath.Join(dir, "data"), filepath.Join(t.TempDir(), "nowhere"), 1)), 0o644)
	if _, errOut, code := run(t, "", "dlq", "list", "--config", elsewhere); code != 1 || !strings.Contains(errOut, "no emitd store in dataDir") {
		t.Fatalf("dlq list without a store: %d %s", code, errOut)
	}
}
