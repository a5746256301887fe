// Package catalog publishes emitd's event contract for one configuration:
// an AsyncAPI 3.0 document (the channels, their messages and the bindings of
// the configured brokers) and JSON Schema 2020-12 documents of every message
// (`emitd catalog`, and GET /catalog where the HTTP listener runs).
//
// Nothing here is a hand-kept copy. The schemas come from the domain's own
// definitions (domain.EnvelopeFactory.Contract, domain.CommandTypeSchema,
// domain.OutcomeSchema); the message shapes from the code that makes the
// messages (publisher.Format on an envelope the real factory made); the
// header names from the adapters that write them (kafka.HeaderName,
// natsjs.HeaderName, amqp.HeaderName, sqs.EncodeAttributes). A key that
// appears in a message without a rule here makes New fail, so the catalog
// cannot silently fall behind what is emitted; the golden files in testdata
// make every change of the contract a visible one.
package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/emitd/emitd/cmd/emitd/internal/brokers"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// Formats of `emitd catalog --format` (and GET /catalog?format=).
const (
	FormatAsyncAPI   = "asyncapi"
	FormatJSONSchema = "jsonschema"
)

// Catalog is the contract of one configuration, rendered once.
type Catalog struct {
	asyncAPI   []byte
	jsonSchema []byte
	// IDs of the schemas, for validators (catalogtest) and tests.
	Messages map[string]MessageInfo
}

// MessageInfo names the schemas of one bus message.
type MessageInfo struct {
	Bus        string
	Variant    domain.Variant
	DetailType string
	Source     string
	// PayloadID is the schema of the message body: the entry, the
	// structured CloudEvent, or (binary mode) the Detail itself.
	PayloadID string
	DetailID  string
	// CloudEventID is the schema of the event in structured form (set when
	// events.format is cloudevents).
	CloudEventID string
}

// Ids of the catalog's own schemas.
const (
	DeadLetterContextID = "urn:emitd:dead-letter-context:v1"
)

func entryID(source string, v domain.Variant, version int) string {
	return fmt.Sprintf("urn:emitd:entry:%s:%s:v%d", source, v, version)
}

func cloudEventID(source string, v domain.Variant, version int) string {
	return fmt.Sprintf("urn:emitd:cloudevent:%s:%s:v%d", source, v, version)
}

// MessageKey names a bus message in Messages.
func MessageKey(v domain.Variant, detailType string) string { return string(v) + "." + detailType }

// New renders the contract of cfg (a validated configuration).
func New(cfg *configs.Config) (*Catalog, error) {
	b := &builder{cfg: cfg, format: brokers.EventFormat(cfg), schemas: map[string]domain.Schema{},
		factory: domain.EnvelopeFactory{Meta: cfg.Metadata, DomainBus: cfg.Events.DomainBus, AnalyticsBus: cfg.Events.AnalyticsBus},
		cat:     &Catalog{Messages: map[string]MessageInfo{}}}
	if err := b.build(); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return b.cat, nil
}

// AsyncAPI is the AsyncAPI 3.0 document, as JSON.
func (c *Catalog) AsyncAPI() []byte { return bytes.Clone(c.asyncAPI) }

// JSONSchema is the JSON Schema 2020-12 document of every message: one
// compound document whose $defs each carry their own $id.
func (c *Catalog) JSONSchema() []byte { return bytes.Clone(c.jsonSchema) }

// Render returns the document in format (FormatAsyncAPI or FormatJSONSchema).
func (c *Catalog) Render(format string) ([]byte, error) {
	switch format {
	case FormatAsyncAPI, "":
		return c.AsyncAPI(), nil
	case FormatJSONSchema:
		return c.JSONSchema(), nil
	}
	return nil, fmt.Errorf("unknown catalog format %q, want %s or %s", format, FormatAsyncAPI, FormatJSONSchema)
}

// Handler serves the catalog: GET (or HEAD) with ?format=asyncapi (the
// default) or ?format=jsonschema. Mount it at /catalog.
func (c *Catalog) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: the catalog is read with GET", http.StatusMethodNotAllowed)
			return
		}
		format := r.URL.Query().Get("format")
		body, err := c.Render(format)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ct := "application/json"
		if format == FormatJSONSchema {
			ct = "application/schema+json"
		}
		w.Header().Set("Content-Type", ct)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}

type builder struct {
	cfg     *configs.Config
	format  publisher.Format
	factory domain.EnvelopeFactory
	cat     *Catalog
	// schemas by $id, and the names they have in the documents.
	schemas map[string]domain.Schema
	names   []schemaName
}

type schemaName struct{ id, name string }

func (b *builder) add(name string, s domain.Schema) string {
	id, _ := s["$id"].(string)
	if id == "" {
		panic("catalog: schema " + name + " has no $id")
	}
	b.schemas[id] = s
	b.names = append(b.names, schemaName{id: id, name: name})
	return id
}

func ref(id string) domain.Schema { return domain.Schema{"$ref": id} }

func (b *builder) build() error {
	events, err := b.factory.Contract()
	if err != nil {
		return err
	}
	// Commands.
	var branches []any
	var types []any
	for _, t := range domain.CommandTypes() {
		id := b.add("command."+string(t), domain.CommandTypeSchema(t))
		types = append(types, string(t))
		branches = append(branches, domain.Schema{
			"if":   domain.Schema{"properties": domain.Schema{"type": domain.Schema{"const": string(t)}}},
			"then": ref(id),
		})
	}
	b.add("command", domain.Schema{"$schema": domain.JSONSchemaDialect, "$id": domain.CommandSchemaID, "title": "Command",
		"description": "Any command on the commands topic: its type selects its schema.",
		"type":        "object", "required": []any{"type"},
		"properties": domain.Schema{"type": domain.Schema{"enum": types}}, "allOf": branches})
	b.add("outcome", domain.OutcomeSchema())
	dlc, err := deadLetterContextSchema()
	if err != nil {
		return err
	}
	b.add("deadLetterContext", dlc)

	// Events: per DetailType, both variants.
	sample, err := b.samples()
	if err != nil {
		return err
	}
	version := b.cfg.Metadata.Version
	for _, ec := range events {
		for _, v := range []domain.Variant{domain.VariantDomain, domain.VariantAnalytics} {
			bus := b.cfg.Events.DomainBus
			if v == domain.VariantAnalytics {
				bus = b.cfg.Events.AnalyticsBus
			}
			detailID := b.add("detail."+ec.DetailType+"."+string(v), ec.Detail[v])
			info := MessageInfo{Bus: bus, Variant: v, DetailType: ec.DetailType, Source: ec.Source, DetailID: detailID}
			env := sample[v]
			env.EventBusName, env.Source, env.DetailType = bus, ec.Source, ec.DetailType
			if b.format.CloudEvents() {
				ce, err := b.cloudEventSchema(env, detailID, cloudEventID(ec.Source, v, version), ec.DetailType, v)
				if err != nil {
					return err
				}
				info.CloudEventID = b.add("cloudevent."+ec.DetailType+"."+string(v), ce)
				info.PayloadID = info.CloudEventID
				if b.format.Binary() {
					info.PayloadID = detailID
				}
			} else {
				entry, err := entrySchema(env, detailID, entryID(ec.Source, v, version), v)
				if err != nil {
					return err
				}
				info.PayloadID = b.add("entry."+ec.DetailType+"."+string(v), entry)
			}
			b.cat.Messages[MessageKey(v, ec.DetailType)] = info
		}
	}
	if err := b.jsonSchemaDoc(); err != nil {
		return err
	}
	return b.asyncAPIDoc(events, sample)
}

// samples makes one envelope of each variant with the real factory, so that
// the catalog describes the messages publisher.Format really makes.
func (b *builder) samples() (map[domain.Variant]domain.Envelope, error) {
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	ch := domain.Change{Event: domain.EventReserved, Slot: domain.Slot{SlotID: "0128c8d4-5c3c-4b6e-9a57-2f3a1c9d8e01",
		HostName: "Sam Person", Status: domain.StatusReserved, TimeSlot: domain.TimeSlot{StartTime: start, EndTime: start.Add(time.Hour)}}}
	envs, err := b.factory.Events(domain.Decision{Changes: []domain.Change{ch}}, "a2b4c6d8-1111-4222-8333-944455556666", start.Add(-time.Hour))
	if err != nil {
		return nil, err
	}
	return map[domain.Variant]domain.Envelope{domain.VariantDomain: envs[0], domain.VariantAnalytics: envs[1]}, nil
}

// entrySchema describes the EventBridge entry: the members of domain.Envelope
// that are serialized, each pinned.
func entrySchema(env domain.Envelope, detailID, id string, v domain.Variant) (domain.Schema, error) {
	rules := map[string]domain.Schema{
		"EventBusName": {"const": env.EventBusName},
		"Source":       {"const": env.Source, "description": "<domain>.<system>.<detailtype> in lower case"},
		"DetailType":   {"const": env.DetailType},
		"Detail": {"type": "string", "contentMediaType": "application/json", "contentSchema": ref(detailID),
			"description": "JSON text: {\"metadata\":{...},\"data\":{...}}"},
	}
	props, required, err := members(reflect.TypeOf(domain.Envelope{}), rules)
	if err != nil {
		return nil, fmt.Errorf("entry: %w", err)
	}
	title := env.DetailType
	if v == domain.VariantAnalytics {
		title += " (analytics copy)"
	}
	return domain.Schema{"$schema": domain.JSONSchemaDialect, "$id": id, "title": title + " entry",
		"description": "The EventBridge entry of " + env.DetailType + " on the " + string(v) + " bus: the message body on every broker.",
		"type":        "object", "properties": props, "required": required, "additionalProperties": false}, nil
}

// cloudEventSchema describes the CloudEvent (structured form) of env.
func (b *builder) cloudEventSchema(env domain.Envelope, detailID, id, detailType string, v domain.Variant) (domain.Schema, error) {
	ce, err := publisher.CloudEventOf(env)
	if err != nil {
		return nil, err
	}
	rules := map[string]domain.Schema{
		"specversion":     {"const": ce.SpecVersion},
		"id":              {"type": "string", "pattern": uuidV4, "description": "metadata.id"},
		"source":          {"const": ce.Source, "format": "uri-reference", "description": "/<domain>/<system> in lower case"},
		"type":            {"const": ce.Type, "description": "the entry's Source"},
		"subject":         {"type": "string", "pattern": canonicalUUID, "description": "the slot id"},
		"time":            {"type": "string", "pattern": millisUTC, "format": "date-time", "description": "metadata.timestamp, as written"},
		"datacontenttype": {"const": ce.DataContentType},
		"dataschema":      {"const": ce.DataSchema, "format": "uri", "description": "the $id of data's schema in this catalog"},
		"data":            ref(detailID),
	}
	props, required, err := members(reflect.TypeOf(publisher.CloudEvent{}), rules)
	if err != nil {
		return nil, fmt.Errorf("cloudevent: %w", err)
	}
	title := detailType
	if v == domain.VariantAnalytics {
		title += " (analytics copy)"
	}
	mode := "structured mode: the message body, application/cloudevents+json"
	if b.format.Binary() {
		mode = "binary mode: the body is data, the other attributes travel as headers (see the AsyncAPI document)"
	}
	return domain.Schema{"$schema": domain.JSONSchemaDialect, "$id": id, "title": title + " CloudEvent",
		"description": "The CloudEvents 1.0 event of " + detailType + " on the " + string(v) + " bus (" + mode + ").",
		"$comment":    "id equals data.metadata.id, subject data.data.slotId and time data.metadata.timestamp: not expressible here.",
		"type":        "object", "properties": props, "required": required, "additionalProperties": false}, nil
}

// members builds the properties of the JSON members of a struct from rules;
// a member without a rule is an error.
func members(t reflect.Type, rules map[string]domain.Schema) (domain.Schema, []any, error) {
	props := domain.Schema{}
	var required []any
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		r, ok := rules[name]
		if !ok {
			return nil, nil, fmt.Errorf("no rule for member %q of %s", name, t)
		}
		props[name] = r
		required = append(required, name)
	}
	if len(props) != len(rules) {
		return nil, nil, fmt.Errorf("a rule for a member %s does not have", t)
	}
	return props, required, nil
}

// deadLetterContextSchema describes the headers a poison-queue message
// carries beside the original command's metadata.
func deadLetterContextSchema() (domain.Schema, error) {
	desc := map[string]string{
		publisher.DLQReason:       "why the command could not be processed",
		publisher.DLQCode:         "a short code of the reason (malformed, invalid, retries_exhausted, ...)",
		publisher.DLQClass:        "permanent or transient",
		publisher.DLQTopic:        "the topic the command came from",
		publisher.DLQHandler:      "the handler that failed",
		publisher.DLQAttempts:     "attempts made, as decimal text",
		publisher.DLQFirstFailure: "first failure, RFC 3339",
		publisher.DLQLastFailure:  "last failure, RFC 3339",
		publisher.DLQInstance:     "host/pid of the emitd instance",
		publisher.DLQDigest:       "SHA-256 of the payload, hex",
		publisher.DLQReplays:      "how often the message was replayed",
	}
	props := domain.Schema{}
	var required []any
	for _, k := range append(append([]string(nil), publisher.PoisonContextKeys...), publisher.DLQReplays) {
		d, ok := desc[k]
		if !ok {
			return nil, fmt.Errorf("no description of poison context key %q", k)
		}
		props[k] = domain.Schema{"type": "string", "description": d}
		if k == publisher.DLQReason || k == publisher.DLQClass || k == publisher.DLQTopic || k == publisher.DLQDigest {
			required = append(required, k)
		}
	}
	props[publisher.DLQClass] = domain.Schema{"enum": []any{"permanent", "transient"}, "description": desc[publisher.DLQClass]}
	props[publisher.DLQDigest] = domain.Schema{"type": "string", "pattern": "^[0-9a-f]{64}$", "description": desc[publisher.DLQDigest]}
	return domain.Schema{"$schema": domain.JSONSchemaDialect, "$id": DeadLetterContextID, "title": "Poison context",
		"description": "Headers (attributes) of a message on the poison queue, beside the original message's own; its body is the original payload, byte for byte.",
		"type":        "object", "properties": props, "required": required}, nil
}

// jsonSchemaDoc renders the compound JSON Schema document.
func (b *builder) jsonSchemaDoc() error {
	defs := domain.Schema{}
	for _, n := range b.names {
		defs[n.name] = b.schemas[n.id]
	}
	doc := domain.Schema{
		"$schema": domain.JSONSchemaDialect,
		"$id":     fmt.Sprintf("urn:emitd:catalog:%s:v%d", strings.ToLower(b.cfg.Metadata.Domain+"."+b.cfg.Metadata.System), b.cfg.Metadata.Version),
		"title":   "emitd message schemas: " + b.cfg.Metadata.Domain + " " + b.cfg.Metadata.System,
		"description": "One JSON Schema 2020-12 resource per message, each under its own $id (the commands, the outcome, the poison context, " +
			"each event's Detail in its domain and analytics variant, and each bus message). A CloudEvent's dataschema is the $id of its data's schema.",
		"$defs": defs,
	}
	out, err := render(doc)
	b.cat.jsonSchema = out
	return err
}

func render(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// The domain's patterns, for the attributes and headers that repeat a
// Detail value.
const (
	canonicalUUID = domain.PatternSlotID
	uuidV4        = domain.PatternEventID
	millisUTC     = domain.PatternTimestamp
)

func sortStrings(s []string) { sort.Strings(s) }
