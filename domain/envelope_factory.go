package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Formats of the Detail's time values, always in UTC: JavaScript's
// toISOString() form, as the original system wrote both, with exactly three
// fraction digits (not RFC3339Nano, which trims zeros) because consumers
// compare them as text.
const (
	timestampLayout = "2006-01-02T15:04:05.000Z"
	startTimeLayout = timestampLayout
)

// EnvelopeFactory turns decided changes into event envelopes.
type EnvelopeFactory struct {
	Meta         Metadata
	DomainBus    string
	AnalyticsBus string
	NewID        func() string // mints metadata.id; nil => uuid.NewString
}

// detailMetadata is a struct, not a map, because its field order IS the
// metadata key order docs/DOMAIN.md prescribes.
type detailMetadata struct {
	Timestamp       string   `json:"timestamp"`
	TimestampEpoch  string   `json:"timestampEpoch"`
	ID              string   `json:"id"`
	CorrelationID   string   `json:"correlationId"`
	Version         int      `json:"version"`
	LifecycleStage  string   `json:"lifecycleStage"`
	Domain          string   `json:"domain"`
	System          string   `json:"system"`
	Service         string   `json:"service"`
	Team            string   `json:"team"`
	HostPlatform    string   `json:"hostPlatform"`
	Owner           string   `json:"owner"`
	Region          string   `json:"region"`
	Jurisdiction    string   `json:"jurisdiction"`
	Tags            []string `json:"tags"`
	DataSensitivity string   `json:"dataSensitivity"`
}

type domainData struct {
	Event      EventName `json:"event"`
	SlotID     string    `json:"slotId"`
	SlotStatus *Status   `json:"slotStatus"` // pointer: a missing one means "not a domain event"
	HostName   string    `json:"hostName"`
	StartTime  string    `json:"startTime"`
}

// analyticsData is domainData without slotStatus, in the same order.
type analyticsData struct {
	Event     EventName `json:"event"`
	SlotID    string    `json:"slotId"`
	HostName  string    `json:"hostName"`
	StartTime string    `json:"startTime"`
}

type detail[D any] struct {
	Metadata detailMetadata `json:"metadata"`
	Data     D              `json:"data"`
}

// Events returns, for each change, its domain envelope followed by its
// analytics variant: [d1, a1, d2, a2, ...], the order the relay publishes.
// An empty correlationID gets one new id shared by all of them (the caller
// should pass the command's; this only keeps one command's events together).
func (f EnvelopeFactory) Events(d Decision, correlationID string, now time.Time) ([]Envelope, error) {
	if correlationID == "" {
		correlationID = f.newID()
	}
	if err := f.check(f.DomainBus, "DomainBus"); err != nil {
		return nil, err
	}
	if err := f.check(f.AnalyticsBus, "AnalyticsBus"); err != nil {
		return nil, err
	}
	out := make([]Envelope, 0, 2*len(d.Changes))
	for _, c := range d.Changes {
		dom, det, err := f.domain(c, correlationID, now)
		if err != nil {
			return nil, err
		}
		// The copy is made from the detail itself, not from its JSON: what
		// Analytics does, without reading back what was just written.
		an, err := f.analytics(dom, det)
		if err != nil {
			return nil, err
		}
		out = append(out, dom, an)
	}
	return out, nil
}

// Domain makes the domain-bus envelope of one change. An empty correlationID
// gets a new one (see Events).
func (f EnvelopeFactory) Domain(c Change, correlationID string, now time.Time) (Envelope, error) {
	if err := f.check(f.DomainBus, "DomainBus"); err != nil {
		return Envelope{}, err
	}
	env, _, err := f.domain(c, correlationID, now)
	return env, err
}

// domain is Domain with the configuration checked, and the detail as well.
func (f EnvelopeFactory) domain(c Change, correlationID string, now time.Time) (Envelope, detail[domainData], error) {
	detailType, err := DetailTypeOf(c.Event)
	if err != nil {
		return Envelope{}, detail[domainData]{}, fmt.Errorf("domain event: %w", err)
	}
	if c.Slot.SlotID == "" {
		return Envelope{}, detail[domainData]{}, fmt.Errorf("domain event %s: change has no slot id", c.Event)
	}
	if correlationID == "" {
		correlationID = f.newID()
	}
	now = now.UTC()
	status := c.Slot.Status
	start := ""
	if !c.Slot.TimeSlot.StartTime.IsZero() {
		start = c.Slot.TimeSlot.StartTime.UTC().Format(startTimeLayout)
	}
	m := f.Meta
	tags := m.Tags
	if tags == nil {
		tags = []string{} // a list, never null, for consumers
	}
	det := detail[domainData]{
		Metadata: detailMetadata{
			Timestamp:      now.Format(timestampLayout),
			TimestampEpoch: strconv.FormatInt(now.UnixMilli(), 10),
			ID:             f.newID(),
			CorrelationID:  correlationID,
			Version:        m.Version, LifecycleStage: m.LifecycleStage,
			Domain: m.Domain, System: m.System, Service: m.Service, Team: m.Team,
			HostPlatform: m.HostPlatform, Owner: m.Owner, Region: m.Region,
			Jurisdiction: m.Jurisdiction, Tags: tags, DataSensitivity: m.DataSensitivity,
		},
		Data: domainData{
			Event: c.Event, SlotID: c.Slot.SlotID, SlotStatus: &status,
			HostName: c.Slot.HostName, StartTime: start,
		},
	}
	b, err := marshal(det)
	if err != nil {
		return Envelope{}, det, fmt.Errorf("encode detail: %w", err)
	}
	return Envelope{
		EventBusName:  f.DomainBus,
		Source:        strings.ToLower(m.Domain + "." + m.System + "." + detailType),
		DetailType:    detailType,
		Detail:        string(b),
		ID:            det.Metadata.ID,
		CorrelationID: correlationID,
		SlotID:        c.Slot.SlotID,
		Event:         c.Event,
	}, det, nil
}

// Analytics makes the analytics-bus copy of a domain envelope: a fresh
// metadata.id (the domain id must not leak to analytics), data.slotStatus
// removed, everything else the same and in the same order.
func (f EnvelopeFactory) Analytics(domainEnv Envelope) (Envelope, error) {
	if err := f.check(f.AnalyticsBus, "AnalyticsBus"); err != nil {
		return Envelope{}, err
	}
	var det detail[domainData]
	dec := json.NewDecoder(strings.NewReader(domainEnv.Detail))
	dec.DisallowUnknownFields() // a key we would drop silently is an error instead
	if err := dec.Decode(&det); err != nil {
		return Envelope{}, fmt.Errorf("analytics variant: domain detail: %w", err)
	}
	if dec.More() {
		return Envelope{}, errors.New("analytics variant: domain detail has trailing data")
	}
	if det.Data.SlotStatus == nil {
		return Envelope{}, errors.New("analytics variant: detail has no data.slotStatus, not a domain event")
	}
	if _, err := DetailTypeOf(det.Data.Event); err != nil {
		return Envelope{}, fmt.Errorf("analytics variant: %w", err)
	}
	return f.analytics(domainEnv, det)
}

// analytics makes the copy from the domain envelope and its detail.
func (f EnvelopeFactory) analytics(domainEnv Envelope, det detail[domainData]) (Envelope, error) {
	meta := det.Metadata
	meta.ID = f.newID()
	if meta.ID == det.Metadata.ID {
		return Envelope{}, errors.New("analytics variant: new id equals the domain event id")
	}
	d := det.Data
	b, err := marshal(detail[analyticsData]{Metadata: meta, Data: analyticsData{
		Event: d.Event, SlotID: d.SlotID, HostName: d.HostName, StartTime: d.StartTime,
	}})
	if err != nil {
		return Envelope{}, fmt.Errorf("encode analytics detail: %w", err)
	}
	return Envelope{
		EventBusName:  f.AnalyticsBus,
		Source:        domainEnv.Source,
		DetailType:    domainEnv.DetailType,
		Detail:        string(b),
		ID:            meta.ID,
		CorrelationID: meta.CorrelationID,
		SlotID:        d.SlotID,
		Event:         d.Event,
	}, nil
}

// check refuses to make envelopes from configuration that startup should
// have refused, rather than emit events with empty fields.
func (f EnvelopeFactory) check(bus, name string) error {
	if bus == "" {
		return fmt.Errorf("envelope factory: %s is not set", name)
	}
	if errs := f.Meta.Validate(); len(errs) > 0 {
		return fmt.Errorf("envelope factory: %w", errors.Join(errs...))
	}
	return nil
}

func (f EnvelopeFactory) newID() string {
	if f.NewID != nil {
		return f.NewID()
	}
	return uuid.NewString()
}
