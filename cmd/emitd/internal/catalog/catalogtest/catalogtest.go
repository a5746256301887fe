// Package catalogtest checks messages against emitd's catalog, for tests:
// the JSON Schemas with santhosh-tekuri/jsonschema (format and content
// assertions on, so a Detail is checked against its contentSchema too), and
// CloudEvents with the CloudEvents Go SDK (adapters/contract's reader).
package catalogtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/emitd/emitd/adapters/contract"
	"github.com/emitd/emitd/cmd/emitd/internal/catalog"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// Validator validates messages against one catalog.
type Validator struct {
	cat      *catalog.Catalog
	compiler *jsonschema.Compiler
	pointers map[string]string // $id -> its location in the document
	mu       sync.Mutex
	compiled map[string]*jsonschema.Schema
	// Counts of what was validated, for test logs.
	Counts map[string]int
}

// New compiles the catalog's JSON Schema document (schemaDoc, as `emitd
// catalog --format jsonschema` prints it; nil: the catalog's own).
func New(t testing.TB, cat *catalog.Catalog, schemaDoc []byte) *Validator {
	t.Helper()
	if schemaDoc == nil {
		schemaDoc = cat.JSONSchema()
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaDoc))
	if err != nil {
		t.Fatalf("catalog JSON Schema document: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.AssertContent()
	if err := c.AddResource("urn:emitd:catalog-document", doc); err != nil {
		t.Fatalf("catalog JSON Schema document: %v", err)
	}
	// Compiling the document compiles every embedded resource ($defs with
	// their own $id) and proves the document is a valid 2020-12 schema.
	if _, err := c.Compile("urn:emitd:catalog-document"); err != nil {
		t.Fatalf("compile the catalog's JSON Schema document: %v", err)
	}
	var names struct {
		Defs map[string]struct {
			ID string `json:"$id"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(schemaDoc, &names); err != nil {
		t.Fatal(err)
	}
	pointers := map[string]string{}
	for name, d := range names.Defs {
		pointers[d.ID] = "urn:emitd:catalog-document#/$defs/" + name
	}
	return &Validator{cat: cat, compiler: c, pointers: pointers, compiled: map[string]*jsonschema.Schema{}, Counts: map[string]int{}}
}

func (v *Validator) schema(id string) (*jsonschema.Schema, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.compiled[id]; ok {
		return s, nil
	}
	loc, ok := v.pointers[id]
	if !ok {
		return nil, fmt.Errorf("the document has no schema %s", id)
	}
	s, err := v.compiler.Compile(loc)
	if err != nil {
		return nil, err
	}
	v.compiled[id] = s
	return s, nil
}

// Check validates a JSON document against the schema id; the error names
// what is wrong.
func (v *Validator) Check(id string, doc []byte) error {
	s, err := v.schema(id)
	if err != nil {
		return fmt.Errorf("schema %s: %w", id, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := s.Validate(inst); err != nil {
		return fmt.Errorf("against %s: %w", id, err)
	}
	v.mu.Lock()
	v.Counts[id]++
	v.mu.Unlock()
	return nil
}

// Command fails t unless b is a command the catalog describes.
func (v *Validator) Command(t testing.TB, b []byte) {
	t.Helper()
	if err := v.Check(domain.CommandSchemaID, b); err != nil {
		t.Errorf("command %s: %v", b, err)
	}
}

// Outcome fails t unless b is an outcome the catalog describes.
func (v *Validator) Outcome(t testing.TB, b []byte) {
	t.Helper()
	if err := v.Check(domain.OutcomeSchemaID, b); err != nil {
		t.Errorf("outcome %s: %v", b, err)
	}
}

// Info finds the catalog's message for a DetailType on bus.
func (v *Validator) Info(bus, detailType string) (catalog.MessageInfo, error) {
	for _, info := range v.cat.Messages {
		if info.Bus == bus && info.DetailType == detailType {
			return info, nil
		}
	}
	return catalog.MessageInfo{}, fmt.Errorf("the catalog has no %q on bus %q", detailType, bus)
}

// Event fails t unless msg, read from bus, is an event message the catalog
// describes: its body against the payload schema (the entry with its
// Detail, the structured CloudEvent, or in binary mode the Detail), and a
// CloudEvent's attributes against the CloudEvent's schema, after the SDK
// decoded it.
func (v *Validator) Event(t testing.TB, bus string, msg *message.Message) {
	t.Helper()
	if err := v.CheckEvent(bus, msg); err != nil {
		t.Errorf("event %s on %s: %v\n%s", msg.UUID, bus, err, msg.Payload)
	}
}

// CheckEvent is Event's check, as an error.
func (v *Validator) CheckEvent(bus string, msg *message.Message) error {
	env, ce, err := publisher.DecodeEvent(bus, msg)
	if err != nil {
		return err
	}
	info, err := v.Info(bus, env.DetailType)
	if err != nil {
		return err
	}
	if err := v.Check(info.PayloadID, msg.Payload); err != nil {
		return err
	}
	if info.CloudEventID == "" {
		return nil
	}
	structured, err := ce.MarshalStructured()
	if err != nil {
		return err
	}
	if err := v.Check(info.CloudEventID, structured); err != nil {
		return err
	}
	// The SDK reads the same event from the neutral metadata (each
	// adapter's wire names are checked by the broker tests).
	ev, err := contract.CloudEventOfMessage(msg)
	if err != nil {
		return err
	}
	return contract.SameCloudEvent(ev, ce)
}

// EventLine is Event for a line `emitd tail` printed: an entry, or a
// CloudEvent in structured form (tail prints binary ones so too).
func (v *Validator) EventLine(t testing.TB, bus, line string) {
	t.Helper()
	msg := message.NewMessage("tail", []byte(line))
	if strings.HasPrefix(line, `{"specversion":`) {
		msg.Metadata.Set(publisher.MetaContentType, publisher.CloudEventsJSON)
		ev, err := contract.DecodeCloudEvent(&contract.HeaderMessage{ContentType: publisher.CloudEventsJSON, Body: []byte(line)})
		if err != nil {
			t.Errorf("tail line on %s: the CloudEvents SDK: %v\n%s", bus, err, line)
			return
		}
		var detail struct {
			Data struct {
				Event domain.EventName `json:"event"`
			} `json:"data"`
		}
		_ = json.Unmarshal(ev.Data(), &detail)
		dt, _ := domain.DetailTypeOf(detail.Data.Event)
		msg.Metadata.Set(publisher.MetaDetailType, dt)
		info, err := v.Info(bus, dt)
		if err != nil {
			t.Errorf("tail line on %s: %v", bus, err)
			return
		}
		if err := v.Check(info.CloudEventID, []byte(line)); err != nil {
			t.Errorf("tail line on %s: %v\n%s", bus, err, line)
		}
		return
	}
	v.Event(t, bus, msg)
}

// Summary says how many documents were validated, by kind of schema.
func (v *Validator) Summary() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	kinds := map[string]int{}
	for id, n := range v.Counts {
		kind := strings.SplitN(strings.TrimPrefix(id, "urn:emitd:"), ":", 2)[0]
		kinds[kind] += n
	}
	var parts []string
	for _, k := range []string{"command", "outcome", "entry", "cloudevent", "detail"} {
		if kinds[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", kinds[k], k))
		}
	}
	return strings.Join(parts, ", ")
}
