package domain

import (
	"encoding/json"
	"testing"
)

// The catalog publishes, per event, the slot's state after it and what its
// host name holds; the aggregate must decide exactly that. Each recipe
// decides the event the way the system does (goldenChange).
func TestCatalogStateAfterEventIsTheAggregates(t *testing.T) {
	for _, c := range catalog {
		ch, _ := goldenChange(t, c.name)
		if ch.Slot.Status != c.status {
			t.Errorf("%s: the aggregate leaves the slot %s, the catalog publishes %s", c.name, ch.Slot.Status, c.status)
		}
		switch c.host {
		case hostCleared:
			if ch.Slot.HostName != "" {
				t.Errorf("%s: host %q, the catalog publishes none", c.name, ch.Slot.HostName)
			}
		case hostSet:
			if ch.Slot.HostName == "" {
				t.Errorf("%s: no host, the catalog publishes one", c.name)
			}
		}
	}
	// Closing keeps whatever host the slot had: a reserved slot's too.
	src := newMemSource(slotAt(idA, 10, StatusReserved, "Sam Person"))
	d, err := Aggregate{}.Decide(t.Context(), cmd(t, CmdCloseSlots, ""), at(11, 0), src)
	if ch := one(t, d, err); ch.Slot.HostName != "Sam Person" {
		t.Errorf("closing a reserved slot left host %q", ch.Slot.HostName)
	}
}

// Contract covers every catalog event and every key the factory writes: a
// key without a rule panics here rather than going unpublished.
func TestContractCoversTheDefinitions(t *testing.T) {
	contracts, err := testFactory().Contract()
	if err != nil {
		t.Fatal(err)
	}
	if len(contracts) != len(EventNames()) {
		t.Fatalf("%d contracts for %d events", len(contracts), len(EventNames()))
	}
	for _, c := range contracts {
		for _, v := range []Variant{VariantDomain, VariantAnalytics} {
			b, err := json.Marshal(c.Detail[v])
			if err != nil {
				t.Fatal(err)
			}
			var s struct {
				ID         string `json:"$id"`
				Properties struct {
					Data struct {
						Properties map[string]any `json:"properties"`
						Required   []string       `json:"required"`
					} `json:"data"`
				} `json:"properties"`
			}
			_ = json.Unmarshal(b, &s)
			_, hasStatus := s.Properties.Data.Properties["slotStatus"]
			if hasStatus != (v == VariantDomain) {
				t.Errorf("%s %s: slotStatus described: %v", c.DetailType, v, hasStatus)
			}
			if s.ID != DetailSchemaID(c.Source, v, 1) {
				t.Errorf("%s %s: $id %s", c.DetailType, v, s.ID)
			}
		}
	}
	for _, typ := range CommandTypes() {
		_ = CommandTypeSchema(typ)
	}
	_ = OutcomeSchema()
	bad := testFactory()
	bad.Meta.Domain = ""
	if _, err := bad.Contract(); err == nil {
		t.Error("a contract from invalid metadata")
	}
}
