package configs_test

import (
	"strings"
	"testing"
)

// allowed is the embedded file with an events.allow section appended under
// events.
func allowed(section string) []string {
	return []string{"  analyticsBus: analytics\n", "  analyticsBus: analytics\n  allow:\n" + section}
}

const allTypes = "[Created, Reserved, Cancelled, CheckedIn, CheckedOut, Opened, Closed, Unattended]"

// events.allow is a guard: what it does not allow is dead-lettered. Naming
// only one bus would dead-letter every event of the other one at run time;
// the configuration is refused at start instead, naming the bus.
func TestEmitPolicyMustNameBothBuses(t *testing.T) {
	cases := []struct {
		name, section string
		path, says    string
	}{
		{"analytics bus missing", "    reservation: " + allTypes + "\n",
			"events.allow", `names no list for events.analyticsBus ("analytics")`},
		{"domain bus missing", "    analytics: [Created]\n",
			"events.allow", `names no list for events.domainBus ("reservation")`},
		{"analytics bus with an empty list", "    reservation: " + allTypes + "\n    analytics: []\n",
			"events.allow.analytics", "is empty: every event bound for events.analyticsBus would be dead-lettered"},
		{"domain bus with no list at all", "    reservation:\n    analytics: [Created]\n",
			"events.allow.reservation", "is empty"},
		// The checks that were there before stay.
		{"unknown bus", "    reservation: [Created]\n    analytics: [Created]\n    reservations: [Created]\n",
			"events.allow.reservations", "is neither events.domainBus"},
		{"unknown DetailType", "    reservation: [Created, Booked]\n    analytics: [Created]\n",
			"events.allow.reservation[1]", `"Booked" is not a DetailType of the catalog`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := problems(t, "embedded.yaml", allowed(c.section)...)
			for _, p := range got {
				if strings.HasPrefix(p, c.path+": ") && strings.Contains(p, c.says) {
					if strings.Contains(c.says, "no list") && !strings.Contains(p, "remove events.allow") {
						t.Errorf("problem %q does not say how to fix it", p)
					}
					return
				}
			}
			t.Errorf("want a problem %q containing %q; got:\n  %s", c.path+": ...", c.says, strings.Join(got, "\n  "))
		})
	}
}

func TestEmitPolicyNamingBothBusesIsValid(t *testing.T) {
	for _, section := range []string{
		"    reservation: " + allTypes + "\n    analytics: " + allTypes + "\n",
		"    reservation: [Created, Reserved]\n    analytics: [Created]\n", // a subset is a choice, not a mistake
	} {
		if got := problems(t, "embedded.yaml", allowed(section)...); len(got) > 0 {
			t.Errorf("%s: want valid; got:\n  %s", section, strings.Join(got, "\n  "))
		}
	}
}
