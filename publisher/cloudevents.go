package publisher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/domain"
)

// Event formats on the bus (events.format) and CloudEvents modes
// (events.cloudevents.mode).
const (
	FormatEventBridge = "eventbridge"
	FormatCloudEvents = "cloudevents"
	ModeStructured    = "structured"
	ModeBinary        = "binary"
)

// CloudEvents media types: the structured event, and the data of emitd's
// events (the Detail object).
const (
	CloudEventsJSON = "application/cloudevents+json; charset=UTF-8"
	DataContentType = "application/json"
	// CloudEventsSpecVersion is the version of the CloudEvents spec emitd
	// speaks.
	CloudEventsSpecVersion = "1.0"
)

// MetaContentType is the metadata key of a CloudEvents message's content
// type: application/cloudevents+json in structured mode, the data's type in
// binary mode. Adapters map it to their content-type header or property.
const MetaContentType = "content-type"

// CEAttributePrefix prefixes the metadata keys of the CloudEvents
// attributes of a binary-mode message ("ce.id", "ce.type", ...). It is
// neutral on purpose: each adapter renames these keys to its binding's
// convention (Kafka "ce_", NATS "ce-", AMQP "cloudEvents:") and back, so
// that each broker's convention lives in its own package.
const CEAttributePrefix = "ce."

// HeaderNaming is a broker binding's names for the binary-mode metadata:
// the attribute key CEAttributePrefix+name travels as the header
// Prefix+name, and MetaContentType as the header ContentType. Each adapter
// holds its binding's values; the renaming both ways is this one.
type HeaderNaming struct {
	Prefix string
	// ContentType is the content-type header; "" leaves MetaContentType
	// as it is (a binding that carries it in a property of its own).
	ContentType string
}

// Header is the header that carries the metadata key.
func (n HeaderNaming) Header(key string) string {
	if name, ok := strings.CutPrefix(key, CEAttributePrefix); ok {
		return n.Prefix + name
	}
	if n.ContentType != "" && key == MetaContentType {
		return n.ContentType
	}
	return key
}

// Key is Header's inverse: the metadata key a header carries.
func (n HeaderNaming) Key(header string) string {
	if name, ok := strings.CutPrefix(header, n.Prefix); ok {
		return CEAttributePrefix + name
	}
	if n.ContentType != "" && header == n.ContentType {
		return MetaContentType
	}
	return header
}

// Format is how envelopes travel on the bus. The zero Format is the
// EventBridge entry, emitd's default.
type Format struct {
	Name string // FormatEventBridge ("" too) or FormatCloudEvents
	Mode string // ModeStructured ("" too) or ModeBinary, for FormatCloudEvents
}

// CloudEvents reports whether f sends CloudEvents.
func (f Format) CloudEvents() bool { return f.Name == FormatCloudEvents }

// Binary reports whether f sends binary-mode CloudEvents.
func (f Format) Binary() bool { return f.CloudEvents() && f.Mode == ModeBinary }

// Message is the message an envelope is published as in this format. Every
// format keeps the metadata ToMessage sets (the Kafka key and FIFO group are
// the slot id, the message id is the event id), so per-slot order and
// de-duplication do not depend on the format.
func (f Format) Message(env domain.Envelope) (*message.Message, error) {
	if !f.CloudEvents() {
		return ToMessage(env)
	}
	msg, err := ToMessage(env)
	if err != nil {
		return nil, err
	}
	ce, err := CloudEventOf(env)
	if err != nil {
		return nil, err
	}
	if f.Binary() {
		msg.Payload = []byte(env.Detail)
		msg.Metadata.Set(MetaContentType, ce.DataContentType)
		for _, a := range ce.attributes() {
			if a.name != "datacontenttype" { // the content type is the binding's own header
				msg.Metadata.Set(CEAttributePrefix+a.name, a.value)
			}
		}
		return msg, nil
	}
	b, err := ce.MarshalStructured()
	if err != nil {
		return nil, fmt.Errorf("encode CloudEvent %s: %w", env.ID, err)
	}
	msg.Payload = b
	msg.Metadata.Set(MetaContentType, CloudEventsJSON)
	return msg, nil
}

// CloudEvent is an envelope as a CloudEvents 1.0 event. It is encoded by
// hand, not with the CloudEvents SDK: its nine attributes are fixed strings,
// and the SDK would re-format time (dropping the millisecond digits that
// metadata.timestamp keeps, which consumers compare as text) and re-encode
// data, whose bytes are final. The tests decode what emitd sends with the
// SDK.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	DataSchema      string          `json:"dataschema"`
	Data            json.RawMessage `json:"data"`
}

type attribute struct{ name, value string }

func (ce CloudEvent) attributes() []attribute {
	return []attribute{{"specversion", ce.SpecVersion}, {"id", ce.ID}, {"source", ce.Source}, {"type", ce.Type},
		{"subject", ce.Subject}, {"time", ce.Time}, {"datacontenttype", ce.DataContentType}, {"dataschema", ce.DataSchema}}
}

// CloudEventOf maps an envelope to its CloudEvent: id = metadata.id, type =
// Source (already a reverse-DNS event type), source = /<domain>/<system> in
// lower case, subject = the slot id, time = metadata.timestamp as written,
// data = the Detail object (each bus's own: the analytics copy's on the
// analytics bus), dataschema = the Detail's schema in the catalog.
func CloudEventOf(env domain.Envelope) (CloudEvent, error) {
	var d struct {
		Metadata struct {
			Timestamp string `json:"timestamp"`
			ID        string `json:"id"`
			Version   int    `json:"version"`
			Domain    string `json:"domain"`
			System    string `json:"system"`
		} `json:"metadata"`
		Data struct {
			SlotID     string          `json:"slotId"`
			SlotStatus json.RawMessage `json:"slotStatus"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(env.Detail), &d); err != nil {
		return CloudEvent{}, fmt.Errorf("envelope %s: Detail: %w", env.ID, err)
	}
	m := d.Metadata
	if m.ID == "" || m.Timestamp == "" || m.Domain == "" || m.System == "" || d.Data.SlotID == "" {
		return CloudEvent{}, fmt.Errorf("envelope %s: Detail lacks metadata.id, timestamp, domain, system or data.slotId", env.ID)
	}
	variant := domain.VariantDomain
	if d.Data.SlotStatus == nil {
		variant = domain.VariantAnalytics // the copy is the Detail without slotStatus
	}
	return CloudEvent{
		SpecVersion:     CloudEventsSpecVersion,
		ID:              m.ID,
		Source:          "/" + strings.ToLower(m.Domain) + "/" + strings.ToLower(m.System),
		Type:            env.Source,
		Subject:         d.Data.SlotID,
		Time:            m.Timestamp,
		DataContentType: DataContentType,
		DataSchema:      domain.DetailSchemaID(env.Source, variant, m.Version),
		Data:            json.RawMessage(env.Detail),
	}, nil
}

// MarshalStructured encodes the event in the structured JSON format, with
// data's bytes unchanged (no HTML escaping, as the Detail was written).
func (ce CloudEvent) MarshalStructured() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ce); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// DecodeEvent reads an event message of any format back into its envelope
// (bus is the topic it was read from; a CloudEvent does not name it), for
// tail, replay and tests. The Detail comes back byte for byte.
func DecodeEvent(bus string, msg *message.Message) (domain.Envelope, CloudEvent, error) {
	ce, isCE, err := CloudEventFromMessage(msg)
	if err != nil {
		return domain.Envelope{}, ce, err
	}
	if !isCE {
		env, err := FromMessage(msg)
		return env, ce, err
	}
	env := domain.Envelope{EventBusName: bus, Source: ce.Type, DetailType: msg.Metadata.Get(MetaDetailType),
		Detail: string(ce.Data), ID: ce.ID, CorrelationID: msg.Metadata.Get(MetaCorrelationID), SlotID: ce.Subject}
	if env.DetailType == "" {
		var d struct {
			Data struct {
				Event domain.EventName `json:"event"`
			} `json:"data"`
		}
		_ = json.Unmarshal(ce.Data, &d)
		if env.DetailType, err = domain.DetailTypeOf(d.Data.Event); err != nil {
			return env, ce, fmt.Errorf("message %s: %w", msg.UUID, err)
		}
	}
	return env, ce, nil
}

// CloudEventFromMessage reads a CloudEvent in either mode; isCE is false
// for a message that is not one (an EventBridge entry).
func CloudEventFromMessage(msg *message.Message) (ce CloudEvent, isCE bool, err error) {
	if v := msg.Metadata.Get(CEAttributePrefix + "specversion"); v != "" {
		get := func(name string) string { return msg.Metadata.Get(CEAttributePrefix + name) }
		ce = CloudEvent{SpecVersion: v, ID: get("id"), Source: get("source"), Type: get("type"), Subject: get("subject"),
			Time: get("time"), DataContentType: msg.Metadata.Get(MetaContentType), DataSchema: get("dataschema"),
			Data: json.RawMessage(msg.Payload)}
		return ce, true, nil
	}
	// Structured: by its content type, or, where a hop dropped it, by its
	// first member (an entry starts with EventBusName).
	if !strings.HasPrefix(msg.Metadata.Get(MetaContentType), "application/cloudevents+json") &&
		!bytes.HasPrefix(msg.Payload, []byte(`{"specversion":`)) {
		return ce, false, nil
	}
	if err := json.Unmarshal(msg.Payload, &ce); err != nil {
		return ce, true, fmt.Errorf("message %s is not a structured CloudEvent: %w", msg.UUID, err)
	}
	if ce.SpecVersion == "" || ce.ID == "" || ce.Type == "" || len(ce.Data) == 0 {
		return ce, true, errors.New("message " + msg.UUID + " is not a structured CloudEvent: specversion, id, type and data are required")
	}
	return ce, true, nil
}
