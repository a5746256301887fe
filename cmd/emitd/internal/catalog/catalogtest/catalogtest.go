// Package catalogtest checks messages against emitd's catalog, for tests:
// the JSON Schemas with santhosh-tekuri/jsonschema (format and content
// assertions on, so a Detail is checked against its contentSchema too), and
// CloudEvents with the CloudEvents Go SDK.
package catalogtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/santhosh-tekuri/jsonschema/v6"

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
	ev, err := Decode(&HeaderMessage{Prefix: publisher.CEAttributePrefix, ContentType: msg.Metadata.Get(publisher.MetaContentType),
		Headers: msg.Metadata, Body: msg.Payload})
	if err != nil {
		return err
	}
	return SameEvent(ev, ce)
}

// EventLine is Event for a line `emitd tail` printed: an entry, or a
// CloudEvent in structured form (tail prints binary ones so too).
func (v *Validator) EventLine(t testing.TB, bus, line string) {
	t.Helper()
	msg := message.NewMessage("tail", []byte(line))
	if strings.HasPrefix(line, `{"specversion":`) {
		msg.Metadata.Set(publisher.MetaContentType, publisher.CloudEventsJSON)
		ev, err := Decode(&HeaderMessage{ContentType: publisher.CloudEventsJSON, Body: []byte(line)})
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

// SameEvent checks that the SDK's event ev carries what emitd meant (ce)
// and is valid CloudEvents 1.0.
func SameEvent(ev *cloudevents.Event, ce publisher.CloudEvent) error {
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("the SDK finds the event invalid: %w", err)
	}
	var problems []string
	for _, c := range []struct{ name, got, want string }{
		{"specversion", ev.SpecVersion(), ce.SpecVersion},
		{"id", ev.ID(), ce.ID},
		{"source", ev.Source(), ce.Source},
		{"type", ev.Type(), ce.Type},
		{"subject", ev.Subject(), ce.Subject},
		{"datacontenttype", ev.DataContentType(), ce.DataContentType},
		{"dataschema", ev.DataSchema(), ce.DataSchema},
	} {
		if c.got != c.want {
			problems = append(problems, fmt.Sprintf("%s %q, want %q", c.name, c.got, c.want))
		}
	}
	if got := ev.Time().UTC().Format("2006-01-02T15:04:05.000Z"); got != ce.Time {
		problems = append(problems, fmt.Sprintf("time %s, want %s", got, ce.Time))
	}
	if !bytes.Equal(ev.Data(), ce.Data) {
		problems = append(problems, fmt.Sprintf("data %s, want %s", ev.Data(), ce.Data))
	}
	if len(problems) > 0 {
		return fmt.Errorf("the SDK decoded: %s", strings.Join(problems, "; "))
	}
	return nil
}

// HeaderMessage is a CloudEvents binding message over a broker's headers,
// read the way the SDK's protocol packages read Kafka, NATS and AMQP
// messages (those packages are not served by the module proxy here): the
// attributes are Prefix+name, looked up with the SDK's spec.WithPrefix,
// and the content type is the binding's own header or property.
type HeaderMessage struct {
	Prefix      string
	ContentType string
	Headers     map[string]string
	Body        []byte
}

var (
	_ binding.Message               = (*HeaderMessage)(nil)
	_ binding.MessageMetadataReader = (*HeaderMessage)(nil)
)

func (m *HeaderMessage) specs() *spec.Versions { return spec.WithPrefix(m.Prefix) }

// ReadEncoding implements binding.MessageReader.
func (m *HeaderMessage) ReadEncoding() binding.Encoding {
	if m.Headers[m.specs().PrefixedSpecVersionName()] != "" {
		return binding.EncodingBinary
	}
	if format.Lookup(m.ContentType) != nil {
		return binding.EncodingStructured
	}
	return binding.EncodingUnknown
}

// ReadStructured implements binding.MessageReader.
func (m *HeaderMessage) ReadStructured(ctx context.Context, w binding.StructuredWriter) error {
	f := format.Lookup(m.ContentType)
	if f == nil || m.ReadEncoding() != binding.EncodingStructured {
		return binding.ErrNotStructured
	}
	return w.SetStructuredEvent(ctx, f, bytes.NewReader(m.Body))
}

// ReadBinary implements binding.MessageReader.
func (m *HeaderMessage) ReadBinary(ctx context.Context, w binding.BinaryWriter) error {
	if m.ReadEncoding() != binding.EncodingBinary {
		return binding.ErrNotBinary
	}
	specs := m.specs()
	version := specs.Version(m.Headers[specs.PrefixedSpecVersionName()])
	if version == nil {
		return binding.ErrUnknownEncoding
	}
	if m.ContentType != "" {
		if err := w.SetAttribute(version.AttributeFromKind(spec.DataContentType), m.ContentType); err != nil {
			return err
		}
	}
	for k, val := range m.Headers {
		if !strings.HasPrefix(strings.ToLower(k), strings.ToLower(m.Prefix)) {
			continue
		}
		if attr := version.Attribute(k); attr != nil {
			if err := w.SetAttribute(attr, val); err != nil {
				return err
			}
		} else if err := w.SetExtension(strings.ToLower(k[len(m.Prefix):]), val); err != nil {
			return err
		}
	}
	return w.SetData(bytes.NewReader(m.Body))
}

// Finish implements binding.Message.
func (m *HeaderMessage) Finish(error) error { return nil }

// Decode turns a binding message into a CloudEvent with the SDK.
func Decode(m binding.Message) (*cloudevents.Event, error) {
	if m.ReadEncoding() == binding.EncodingUnknown {
		return nil, fmt.Errorf("not a CloudEvent: neither a %sspecversion header nor a CloudEvents content type", "ce")
	}
	ev, err := binding.ToEvent(context.Background(), m)
	if err != nil {
		return nil, fmt.Errorf("the CloudEvents SDK: %w", err)
	}
	return ev, nil
}

// GetAttribute implements binding.MessageMetadataReader.
func (m *HeaderMessage) GetAttribute(k spec.Kind) (spec.Attribute, interface{}) {
	specs := m.specs()
	version := specs.Version(m.Headers[specs.PrefixedSpecVersionName()])
	if version == nil {
		return nil, nil
	}
	attr := version.AttributeFromKind(k)
	if attr == nil {
		return nil, nil
	}
	if k == spec.DataContentType && m.ContentType != "" {
		return attr, m.ContentType
	}
	for h, v := range m.Headers {
		if strings.EqualFold(h, attr.PrefixedName()) {
			return attr, v
		}
	}
	return attr, nil
}

// GetExtension implements binding.MessageMetadataReader.
func (m *HeaderMessage) GetExtension(name string) interface{} {
	for h, v := range m.Headers {
		if strings.EqualFold(h, m.Prefix+name) {
			return v
		}
	}
	return nil
}
