package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emitd/emitd/cmd/emitd/internal/catalog"
	"github.com/emitd/emitd/configs"
)

// `emitd catalog` prints the catalog of its configuration, in either
// format, explains itself, and refuses what it does not know.
func TestCatalogCommand(t *testing.T) {
	cfgPath := "../../configs/kafka.yaml"
	cfg, err := configs.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "", "catalog", "--config", cfgPath)
	if code != 0 || out != string(cat.AsyncAPI()) {
		t.Fatalf("catalog: code %d, %d bytes (want the AsyncAPI document of kafka.yaml)\n%s", code, len(out), errOut)
	}
	var doc struct {
		AsyncAPI string `json:"asyncapi"`
		Servers  map[string]struct {
			Protocol string `json:"protocol"`
		} `json:"servers"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.AsyncAPI != "3.0.0" || doc.Servers["broker"].Protocol != "kafka" {
		t.Errorf("catalog: asyncapi %q, servers %+v (%v)", doc.AsyncAPI, doc.Servers, err)
	}
	out, _, code = run(t, "", "catalog", "--format", "jsonschema", "--config", cfgPath)
	if code != 0 || out != string(cat.JSONSchema()) || !strings.Contains(out, `"$schema": "https://json-schema.org/draft/2020-12/schema"`) {
		t.Errorf("catalog --format jsonschema: code %d, not the JSON Schema document", code)
	}
	// Without --config: the built-in default.
	if out, _, code = run(t, "", "catalog"); code != 0 || !strings.Contains(out, `"protocol": "nats"`) {
		t.Errorf("catalog of the built-in default: code %d", code)
	}
	if _, errOut, code = run(t, "", "catalog", "--format", "yaml"); code != 2 || !strings.Contains(errOut, "--format yaml: want asyncapi or jsonschema") {
		t.Errorf("catalog --format yaml: code %d, stderr %q", code, errOut)
	}
	help, _, _ := run(t, "", "catalog", "--help")
	for _, want := range []string{"AsyncAPI 3.0", "JSON Schema 2020-12", "--format FORMAT", "contentSchema", "/catalog"} {
		if !strings.Contains(help, want) {
			t.Errorf("catalog --help does not mention %q:\n%s", want, help)
		}
	}
	// A configuration that asks for CloudEvents on EventBridge is refused,
	// naming the field.
	b, err := os.ReadFile("../../configs/aws.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	doc2 := strings.Replace(string(b), "events:\n  broker: eventbridge\n", "events:\n  broker: eventbridge\n  format: cloudevents\n", 1)
	if err := os.WriteFile(bad, []byte(doc2), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code = run(t, "", "catalog", "--config", bad); code != 2 || !strings.Contains(errOut, "events.format: cloudevents cannot be used with events.broker eventbridge") {
		t.Errorf("catalog of cloudevents on eventbridge: code %d, stderr %q", code, errOut)
	}
}

// With events.format cloudevents in binary mode, tail prints each event
// whole, as a structured CloudEvent, and --field reads inside its data.
func TestTailCloudEvents(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, freePort(t))
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(b), "events:\n", "events:\n  format: cloudevents\n  cloudevents:\n    mode: binary\n", 1)
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	startServe(t, cfg)
	if _, errOut, code := run(t, "", "send", "--config", cfg, `{"type":"CreateSlots","data":{"date":"2026-12-01","count":1}}`); code != 0 {
		t.Fatalf("send: %d %s", code, errOut)
	}
	out, errOut, code := run(t, "", "tail", "--config", cfg, "--bus", "analytics", "--from-beginning", "-n", "1", "--timeout", "30s")
	var ce map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &ce) != nil {
		t.Fatalf("tail: code %d %q %s", code, out, errOut)
	}
	data, _ := ce["data"].(map[string]any)
	if ce["specversion"] != "1.0" || ce["type"] != "reservation.slotreservation.created" || ce["source"] != "/reservation/slotreservation" ||
		ce["dataschema"] != "urn:emitd:detail:reservation.slotreservation.created:analytics:v1" || data == nil {
		t.Errorf("tail printed %s", out)
	}
	slot, _, code := run(t, "", "tail", "--config", cfg, "--bus", "reservation", "--from-beginning", "-n", "1", "--timeout", "30s", "--field", "data.slotId")
	if slot = strings.TrimSpace(slot); code != 0 || slot != ce["subject"] {
		t.Errorf("tail --field data.slotId: code %d, %q, want the subject %v", code, slot, ce["subject"])
	}
}
