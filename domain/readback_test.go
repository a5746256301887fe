package domain

import (
	"strings"
	"testing"
)

// An event read back from its entry is the envelope the factory made: the
// ids come out of the Detail, which is not touched.
func TestEnvelopeOfReadsBackWhatTheFactoryMade(t *testing.T) {
	c, now := goldenChange(t, EventReserved)
	envs, err := testFactory().Events(Decision{Changes: []Change{c}}, goldenCorrelation, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range envs {
		got, err := EnvelopeOf(want.EventBusName, want.Source, want.DetailType, want.Detail)
		if err != nil {
			t.Fatalf("%s: %v", want.EventBusName, err)
		}
		if got.EventBusName != want.EventBusName || got.Source != want.Source || got.DetailType != want.DetailType ||
			got.Detail != want.Detail || got.ID != want.ID || got.CorrelationID != want.CorrelationID ||
			got.SlotID != want.SlotID || got.Event != want.Event {
			t.Errorf("read back:\n got %+v\nwant %+v", got, want)
		}
	}
}

func TestEnvelopeOfRefusesWhatCannotBeReEmitted(t *testing.T) {
	long := strings.Repeat("x", 5000)
	for _, c := range []struct {
		source, detailType, detail, says string
	}{
		{"", "Reserved", `{"metadata":{"id":"a"}}`, "no Source"},
		{"s", "", `{"metadata":{"id":"a"}}`, "no DetailType"},
		{"s", "Reserved", "", "no Detail"},
		{"s", "Reserved", "not json" + long, "not a JSON object"},
		{"s", "Reserved", `[1,2]`, "not a JSON object"},
		{"s", "Reserved", `{"metadata":{"id":"a"}} trailing`, "not a JSON object"},
		{"s", "Reserved", "{\"metadata\":{\"id\":\"a\xff\"}}", "not valid UTF-8"},
		{"s", "Reserved", `{"data":{}}`, "no metadata object"},
		{"s", "Reserved", `{"metadata":{}}`, "metadata.id is missing"},
		{"s", "Reserved", `{"metadata":{"id":42}}`, "metadata.id is not a string"},
		{"s", "Reserved", `{"metadata":{"id":""}}`, "metadata.id is empty"},
		{"s", "Reserved", `{"metadata":{"id":"` + long + `"}}`, "over 128"},
		{"s", "Reserved", `{"metadata":{"id":"a\u0007b"}}`, "control characters"},
	} {
		_, err := EnvelopeOf("reservation", c.source, c.detailType, c.detail)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%.40q: %v, want an error saying %q", c.detail, err, c.says)
			continue
		}
		if len(err.Error()) > 300 {
			t.Errorf("%.40q: error of %d bytes: the input is not bounded", c.detail, len(err.Error()))
		}
	}
}
