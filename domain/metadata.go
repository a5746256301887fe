package domain

import (
	"fmt"
	"strings"
)

// Metadata is the static part of every event's metadata, from configuration.
type Metadata struct {
	Version         int      `json:"version" yaml:"version"`
	LifecycleStage  string   `json:"lifecycleStage" yaml:"lifecycleStage"`
	Domain          string   `json:"domain" yaml:"domain"`
	System          string   `json:"system" yaml:"system"`
	Service         string   `json:"service" yaml:"service"`
	Team            string   `json:"team" yaml:"team"`
	HostPlatform    string   `json:"hostPlatform" yaml:"hostPlatform"`
	Owner           string   `json:"owner" yaml:"owner"`
	Region          string   `json:"region" yaml:"region"`
	Jurisdiction    string   `json:"jurisdiction" yaml:"jurisdiction"`
	Tags            []string `json:"tags" yaml:"tags"`
	DataSensitivity string   `json:"dataSensitivity" yaml:"dataSensitivity"`
}

var (
	lifecycleStages  = []string{"production", "qa", "test", "development", "staging", "demo"}
	dataSensitivites = []string{"public", "sensitive", "proprietary", "secret"}
)

// DefaultMetadata is the original system's metadata.
func DefaultMetadata() Metadata {
	return Metadata{
		Version:         1,
		LifecycleStage:  "production",
		Domain:          "Reservation",
		System:          "SlotReservation",
		Service:         "emitd",
		Team:            "MyDemoTeam",
		HostPlatform:    "AWS",
		Owner:           "MyDemoTeam",
		Region:          "eu-north-1",
		Jurisdiction:    "EU",
		Tags:            []string{"backend", "slotreservation"},
		DataSensitivity: "sensitive",
	}
}

// Validate returns every problem at once, each naming its field, so that an
// operator fixes the configuration in one go when the daemon starts rather
// than on the first event.
func (m Metadata) Validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("metadata.%s: "+format, append([]any{field}, args...)...))
	}
	if m.Version <= 0 {
		bad("version", "required, must be a positive number, got %d", m.Version)
	}
	oneOf := func(field, v string, allowed []string, required bool) {
		switch {
		case strings.TrimSpace(v) == "":
			if required {
				bad(field, "required, one of %s", strings.Join(allowed, ", "))
			}
		case !contains(allowed, v):
			bad(field, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
		}
	}
	oneOf("lifecycleStage", m.LifecycleStage, lifecycleStages, true)
	for _, f := range []struct{ name, v string }{
		{"domain", m.Domain}, {"system", m.System}, {"service", m.Service}, {"team", m.Team},
	} {
		if strings.TrimSpace(f.v) == "" {
			bad(f.name, "required")
		}
	}
	for i, t := range m.Tags {
		if strings.TrimSpace(t) == "" {
			bad(fmt.Sprintf("tags[%d]", i), "must not be empty")
		}
	}
	oneOf("dataSensitivity", m.DataSensitivity, dataSensitivites, false)
	return errs
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
