package publisher

import (
	"fmt"
	"sort"
	"strings"

	"github.com/emitd/emitd/domain"
)

// Policy says which event types (DetailTypes) may go to which bus. The relay
// and replay both ask it, so nothing reaches a bus it was not meant for, not
// even an edited dead letter.
type Policy struct {
	allow map[string]map[string]bool
}

// NewPolicy builds a policy from bus -> allowed DetailTypes.
func NewPolicy(allow map[string][]string) *Policy {
	p := &Policy{allow: map[string]map[string]bool{}}
	for bus, types := range allow {
		p.allow[bus] = map[string]bool{}
		for _, t := range types {
			p.allow[bus][t] = true
		}
	}
	return p
}

// Allows reports whether an event of detailType may be published to bus.
func (p *Policy) Allows(bus, detailType string) bool {
	return p == nil || p.allow[bus][detailType]
}

// Check returns an error naming what the policy forbids, or nil.
func (p *Policy) Check(bus, detailType string) error {
	if p.Allows(bus, detailType) {
		return nil
	}
	var allowed []string
	for t := range p.allow[bus] {
		allowed = append(allowed, t)
	}
	sort.Strings(allowed)
	if len(allowed) == 0 {
		return fmt.Errorf("emit policy: no event may go to bus %q", bus)
	}
	// The DetailType may come from outside (a bus's dead-letter queue):
	// quoted, bounded.
	return fmt.Errorf("emit policy: %s may not go to bus %q (allowed there: %s)", domain.Quote(detailType), bus, strings.Join(allowed, ", "))
}
