package contract

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"

	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// CloudEventsBinding is how an adapter carries CloudEvents, and how the
// suite reads them natively.
type CloudEventsBinding struct {
	// Prefix of the attribute headers: "ce_" (Kafka), "ce-" (NATS),
	// "cloudEvents:" (AMQP).
	Prefix string
	// Read reads n messages of topic with the broker's own client (for
	// brokers that route only to existing queues, from NativeGroup's queue,
	// as NativeCheck does).
	Read func(t *testing.T, topic string, n int) []Native
}

// Native is one message as the broker's own client read it.
type Native struct {
	Key string // the record key, where the broker has one
	// Headers are the headers (application properties, attributes).
	Headers map[string]string
	// ContentType is the content type, from the header or property the
	// binding names for it.
	ContentType string
	Body        []byte
}

// CloudEventEnvelopes are n envelopes made by the real factory (domain
// events and analytics copies, alternately), on slots in turn.
func CloudEventEnvelopes(bus string, n int, slots []string) []domain.Envelope {
	f := domain.EnvelopeFactory{Meta: domain.DefaultMetadata(), DomainBus: bus, AnalyticsBus: bus}
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var out []domain.Envelope
	for i := 0; len(out) < n; i++ {
		ch := domain.Change{Event: domain.EventReserved, Slot: domain.Slot{SlotID: slots[i%len(slots)], HostName: "Zoë & Kim",
			Status: domain.StatusReserved, TimeSlot: domain.TimeSlot{StartTime: start, EndTime: start.Add(time.Hour)}}}
		envs, err := f.Events(domain.Decision{Changes: []domain.Change{ch}}, fmt.Sprintf("corr-%d", i), start.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			panic(err)
		}
		out = append(out, envs...)
	}
	return out[:n]
}

// cloudEvents: what the adapter puts on the wire is a CloudEvent the SDK
// reads as emitd meant it, with the binding's header names (binary) or as
// application/cloudevents+json (structured); per-slot order and the Kafka
// key hold as for entries; the adapter's own subscriber gives the envelope
// back (what tail and replay read).
func (s *suite) cloudEvents(t *testing.T, mode string) {
	b := s.feat.CloudEvents
	if b == nil {
		t.Skipf("[%s] no CloudEvents binding declared", s.name)
	}
	format := publisher.Format{Name: publisher.FormatCloudEvents, Mode: mode}
	topic := s.f.NewTopic(t)
	pub := s.publisher(t)
	s.initialize(t, s.subscriber(t, NativeGroup), topic)
	sub := s.subscriber(t, group("cloudevents"))
	c := collect(s.subscribe(t, sub, topic), true)
	defer c.halt()

	envs := CloudEventEnvelopes(topic, 12, Slots(3))
	byID := map[string]int{}
	for i, env := range envs {
		byID[env.ID] = i
		m, err := format.Message(env)
		if err != nil {
			s.fatalf(t, "Format.Message: %v", err)
		}
		if err := pub.Publish(topic, m); err != nil {
			s.fatalf(t, "publish: %v", err)
		}
	}
	natives := b.Read(t, topic, len(envs))
	lastOfSlot := map[string]int{}
	for _, n := range natives {
		ev, err := DecodeCloudEvent(&HeaderMessage{Prefix: b.Prefix, ContentType: n.ContentType, Headers: n.Headers, Body: n.Body})
		if err != nil {
			s.errorf(t, "%s: a message the SDK cannot read: %v\nheaders %v\nbody %s", mode, err, n.Headers, n.Body)
			continue
		}
		i, ok := byID[ev.ID()]
		if !ok {
			s.fatalf(t, "%s: CloudEvent id %q: not one of the sent envelopes", mode, ev.ID())
		}
		env := envs[i]
		want, err := publisher.CloudEventOf(env)
		if err != nil {
			s.fatalf(t, "CloudEventOf: %v", err)
		}
		if err := SameCloudEvent(ev, want); err != nil {
			s.errorf(t, "%s: envelope %d: %v", mode, i, err)
		}
		switch mode {
		case publisher.ModeBinary:
			if !bytes.Equal(n.Body, []byte(env.Detail)) {
				s.errorf(t, "binary: envelope %d: body is not the Detail, byte for byte:\n got %s\nwant %s", i, n.Body, env.Detail)
			}
			if n.Headers[b.Prefix+"id"] != env.ID || n.ContentType != publisher.DataContentType {
				s.errorf(t, "binary: envelope %d: header %sid %q, content type %q", i, b.Prefix, n.Headers[b.Prefix+"id"], n.ContentType)
			}
		default:
			if !strings.HasPrefix(n.ContentType, "application/cloudevents+json") {
				s.errorf(t, "structured: envelope %d: content type %q", i, n.ContentType)
			}
			for k := range n.Headers {
				if strings.HasPrefix(k, b.Prefix) {
					s.errorf(t, "structured: envelope %d: attribute header %q beside the structured event", i, k)
				}
			}
		}
		if n.Key != "" && n.Key != env.SlotID {
			s.errorf(t, "%s: envelope %d: key %q, want the slot id %q", mode, i, n.Key, env.SlotID)
		}
		if s.feat.PerKeyOrder || s.feat.GlobalOrder {
			if last, ok := lastOfSlot[env.SlotID]; ok && last > i {
				s.errorf(t, "%s: slot %s: envelope %d after %d", mode, env.SlotID, i, last)
			}
			lastOfSlot[env.SlotID] = i
		}
	}
	if missing := waitFor(ids(envs), c); len(missing) > 0 {
		s.fatalf(t, "%d of %d CloudEvents not received through the subscriber within %s", len(missing), len(envs), WaitTimeout)
	}
	got, _ := c.snapshot()
	for _, m := range got {
		back, _, err := publisher.DecodeEvent(topic, m)
		if err != nil {
			s.errorf(t, "%s: DecodeEvent: %v", mode, err)
			continue
		}
		i, ok := byID[back.ID]
		if !ok {
			s.errorf(t, "%s: DecodeEvent id %q: not sent", mode, back.ID)
			continue
		}
		orig := envs[i]
		orig.Event = ""
		if back != orig {
			s.errorf(t, "%s: DecodeEvent = %+v\nwant %+v", mode, back, orig)
		}
	}
}

// SameCloudEvent checks that the SDK's event ev is valid CloudEvents 1.0
// and carries what emitd meant (want).
func SameCloudEvent(ev *cloudevents.Event, want publisher.CloudEvent) error {
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("the SDK finds the event invalid: %w", err)
	}
	var problems []string
	for _, c := range []struct{ name, got, want string }{
		{"specversion", ev.SpecVersion(), want.SpecVersion},
		{"id", ev.ID(), want.ID},
		{"source", ev.Source(), want.Source},
		{"type", ev.Type(), want.Type},
		{"subject", ev.Subject(), want.Subject},
		{"datacontenttype", ev.DataContentType(), want.DataContentType},
		{"dataschema", ev.DataSchema(), want.DataSchema},
	} {
		if c.got != c.want {
			problems = append(problems, fmt.Sprintf("%s %q, want %q", c.name, c.got, c.want))
		}
	}
	if got := ev.Time().UTC().Format("2006-01-02T15:04:05.000Z"); got != want.Time {
		problems = append(problems, fmt.Sprintf("time %s, want %s", got, want.Time))
	}
	if !bytes.Equal(ev.Data(), want.Data) {
		problems = append(problems, fmt.Sprintf("data %s, want %s", ev.Data(), want.Data))
	}
	if len(ev.Extensions()) > 0 {
		problems = append(problems, fmt.Sprintf("extensions %v, want none", ev.Extensions()))
	}
	if len(problems) > 0 {
		return fmt.Errorf("the SDK decoded: %s", strings.Join(problems, "; "))
	}
	return nil
}

// HeaderMessage is a CloudEvents binding message over a broker's headers,
// read the way the SDK's protocol packages read Kafka, NATS and AMQP
// messages (those packages are not served by the module proxy here): the
// attributes are Prefix+name, looked up with the SDK's spec.WithPrefix; the
// content type is the binding's own header or property. The SDK does the
// rest (binding.ToEvent).
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

func (m *HeaderMessage) version() spec.Version {
	specs := spec.WithPrefix(m.Prefix)
	for h, v := range m.Headers {
		if strings.EqualFold(h, specs.PrefixedSpecVersionName()) {
			return specs.Version(v)
		}
	}
	return nil
}

// ReadEncoding implements binding.MessageReader.
func (m *HeaderMessage) ReadEncoding() binding.Encoding {
	if m.version() != nil {
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
	version := m.version()
	if version == nil {
		return binding.ErrNotBinary
	}
	if m.ContentType != "" {
		if err := w.SetAttribute(version.AttributeFromKind(spec.DataContentType), m.ContentType); err != nil {
			return err
		}
	}
	for k, val := range m.Headers {
		if len(k) < len(m.Prefix) || !strings.EqualFold(k[:len(m.Prefix)], m.Prefix) {
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

// GetAttribute implements binding.MessageMetadataReader.
func (m *HeaderMessage) GetAttribute(k spec.Kind) (spec.Attribute, interface{}) {
	version := m.version()
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

// Finish implements binding.Message.
func (m *HeaderMessage) Finish(error) error { return nil }

// DecodeCloudEvent turns a binding message into a CloudEvent with the SDK.
func DecodeCloudEvent(m binding.Message) (*cloudevents.Event, error) {
	if m.ReadEncoding() == binding.EncodingUnknown {
		return nil, fmt.Errorf("not a CloudEvent: no specversion attribute header and no CloudEvents content type")
	}
	ev, err := binding.ToEvent(context.Background(), m)
	if err != nil {
		return nil, fmt.Errorf("the CloudEvents SDK: %w", err)
	}
	return ev, nil
}

// CloudEventOfMessage decodes, with the SDK, a Watermill message of an
// emitd adapter (its CloudEvents attributes in the neutral metadata).
func CloudEventOfMessage(m *message.Message) (*cloudevents.Event, error) {
	return DecodeCloudEvent(&HeaderMessage{Prefix: publisher.CEAttributePrefix, ContentType: m.Metadata.Get(publisher.MetaContentType),
		Headers: m.Metadata, Body: m.Payload})
}
