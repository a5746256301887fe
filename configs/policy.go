package configs

import (
	"fmt"
	"maps"
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
	allow := c.Events.Allow
	if len(allow) == 0 {
		return // the default policy
	}
	known := catalogDetailTypes()
	// The policy is a guard, not a filter: the relay dead-letters what it
	// forbids. A bus left out, or listed with no types, would therefore
	// dead-letter every event bound for it, one by one, without the daemon
	// ever saying why at start. Every bus must be named, with its types.
	for _, b := range []NamedTopic{{"events.domainBus", c.Events.DomainBus}, {"events.analyticsBus", c.Events.AnalyticsBus}} {
		if b.Name == "" {
			continue // "required" is reported already
		}
		types, ok := allow[b.Name]
		switch {
		case !ok:
			add("events.allow", "names no list for %s (%q): every event bound for it would be dead-lettered; "+
				"add %q with the DetailTypes it may carry, or remove events.allow for the default (every catalog event to both buses)",
				b.Path, b.Name, b.Name)
		case len(types) == 0:
			add("events.allow."+b.Name, "is empty: every event bound for %s would be dead-lettered; "+
				"list the DetailTypes it may carry, or remove events.allow for the default", b.Path)
		}
	}
	for _, bus := range slices.Sorted(maps.Keys(allow)) {
		path := "events.allow." + bus
		if bus != c.Events.DomainBus && bus != c.Events.AnalyticsBus {
			add(path, "%q is neither events.domainBus (%q) nor events.analyticsBus (%q)", bus, c.Events.DomainBus, c.Events.AnalyticsBus)
		}
		for i, t := range allow[bus] {
			if !slices.Contains(known, t) {
				add(fmt.Sprintf("%s[%d]", path, i), "%q is not a DetailType of the catalog (%s)", t, strings.Join(known, ", "))
			}
		}
	}
}
