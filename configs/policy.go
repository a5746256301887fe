package configs

import (
	"fmt"
	"slices"
	"strings"

	"github.com/emitd/emitd/domain"
)

// EmitPolicy returns events.allow, or the default when it is empty: every
// catalog event to the domain bus, and its analytics copy (same DetailType)
// to the analytics bus.
func (c *Config) EmitPolicy() map[string][]string {
	if len(c.Events.Allow) > 0 {
		return c.Events.Allow
	}
	all := catalogDetailTypes()
	return map[string][]string{c.Events.DomainBus: all, c.Events.AnalyticsBus: all}
}

func catalogDetailTypes() []string {
	var out []string
	for _, e := range domain.EventNames() {
		dt, _ := domain.DetailTypeOf(e)
		out = append(out, dt)
	}
	return out
}

func (c *Config) validatePolicy(add func(string, string, ...any)) {
	known := catalogDetailTypes()
	for bus, types := range c.Events.Allow {
		path := "events.allow." + bus
		if bus != c.Events.DomainBus && bus != c.Events.AnalyticsBus {
			add(path, "%q is neither events.domainBus (%q) nor events.analyticsBus (%q)", bus, c.Events.DomainBus, c.Events.AnalyticsBus)
		}
		for i, t := range types {
			if !slices.Contains(known, t) {
				add(fmt.Sprintf("%s[%d]", path, i), "%q is not a DetailType of the catalog (%s)", t, strings.Join(known, ", "))
			}
		}
	}
}
