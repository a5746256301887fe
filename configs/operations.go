package configs

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/schedule"
)

// DefaultHTTPListen is http.listen when it is left out: loopback only, so
// that a default installation exposes nothing without authentication.
const DefaultHTTPListen = "127.0.0.1:9464"

// DefaultMaxRelayLag is http.maxRelayLag when it is left out.
const DefaultMaxRelayLag = 60 * time.Second

// DefaultCatchUp is schedule.catchUp when it is left out.
const DefaultCatchUp = time.Hour

// DefaultSchedule is the origin system's schedule: slots for the working
// day at 05:00 on weekdays, unattended reservations released ten minutes
// past each hour of the day, and slots whose hour has passed closed on the
// hour.
func DefaultSchedule() []ScheduleEntry {
	return []ScheduleEntry{
		{Name: "create-slots", Cron: "0 5 * * MON-FRI", Command: ScheduleCommand{Type: string(domain.CmdCreateSlots)}},
		{Name: "unattend-slots", Cron: "10 6-16 * * *", Command: ScheduleCommand{Type: string(domain.CmdUnattendSlots)}},
		{Name: "close-slots", Cron: "0 7-17 * * *", Command: ScheduleCommand{Type: string(domain.CmdCloseSlots)}},
	}
}

func (c *Config) applyOperationsDefaults() {
	if c.HTTP.MaxRelayLag == 0 {
		c.HTTP.MaxRelayLag = DefaultMaxRelayLag
	}
	s := &c.Schedule
	if s.Enabled == nil {
		on := true
		s.Enabled = &on
	}
	if s.Timezone == "" {
		s.Timezone = "UTC"
	}
	if s.CatchUp == nil {
		d := DefaultCatchUp
		s.CatchUp = &d
	}
	if s.Entries == nil {
		s.Entries = DefaultSchedule()
	}
}

// entryName is what an entry's name may be: it is a metric label and part
// of log lines.
var entryName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func (c *Config) validateOperations(add func(string, string, ...any)) {
	if l := c.HTTP.ListenAddr(); l != "" {
		host, port, err := net.SplitHostPort(l)
		n, perr := strconv.Atoi(port)
		switch {
		case err != nil:
			add("http.listen", "%q: want host:port, e.g. 127.0.0.1:9464 or 0.0.0.0:9464 (\"\" turns the listener off): %v", l, err)
		case perr != nil || n < 0 || n > 65535:
			add("http.listen", "%q: the port must be a number from 0 to 65535", l)
		case host != "" && net.ParseIP(host) == nil && !hostName.MatchString(host):
			add("http.listen", "%q: %q is neither an IP address nor a host name", l, host)
		}
	}
	if c.HTTP.MaxRelayLag < time.Second {
		add("http.maxRelayLag", "must be at least 1s, got %s", c.HTTP.MaxRelayLag)
	} else if c.HTTP.MaxRelayLag <= c.Relay.PollInterval {
		add("http.maxRelayLag", "%s must be longer than relay.pollInterval (%s)", c.HTTP.MaxRelayLag, c.Relay.PollInterval)
	}

	s := c.Schedule
	if _, err := schedule.LoadLocation(s.Timezone); err != nil {
		add("schedule.timezone", "%v", err)
	}
	if s.CatchUp != nil {
		switch cu := *s.CatchUp; {
		case cu < 0:
			add("schedule.catchUp", "must be 0 (no catch-up) or more, got %s", cu)
		case cu >= c.Store.Retention:
			// The catch-up relies on the command ids of firings already made
			// being remembered: a firing older than the retention would be
			// processed again.
			add("schedule.catchUp", "%s must be shorter than store.retention (%s): a firing caught up after its command id was pruned would be processed twice", cu, c.Store.Retention)
		}
	}
	seen := map[string]int{}
	for i, e := range s.Entries {
		at := fmt.Sprintf("schedule.entries[%d]", i)
		switch {
		case e.Name == "":
			add(at+".name", "required")
		case !entryName.MatchString(e.Name):
			add(at+".name", "%q: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", clipText(e.Name))
		default:
			if j, dup := seen[e.Name]; dup {
				add(at+".name", "%q is also schedule.entries[%d].name: names identify firings", e.Name, j)
			}
			seen[e.Name] = i
		}
		if _, ferr := schedule.NewEntry(e.Name, e.Cron, domain.CommandType(e.Command.Type), e.Command.Data); ferr != nil {
			add(at+"."+ferr.Field, "%s", ferr.Msg)
		}
	}
}

var hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$`)

// clipText bounds a value quoted in a problem.
func clipText(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "…"
}

// ScheduleEntries returns the configured entries, parsed (the
// configuration was validated), and the schedule's zone.
func (c *Config) ScheduleEntries() ([]schedule.Entry, *time.Location, error) {
	loc, err := schedule.LoadLocation(c.Schedule.Timezone)
	if err != nil {
		return nil, nil, fmt.Errorf("schedule.timezone: %w", err)
	}
	var out []schedule.Entry
	for i, e := range c.Schedule.Entries {
		en, ferr := schedule.NewEntry(e.Name, e.Cron, domain.CommandType(e.Command.Type), e.Command.Data)
		if ferr != nil {
			return nil, nil, fmt.Errorf("schedule.entries[%d].%s: %s", i, ferr.Field, ferr.Msg)
		}
		out = append(out, en)
	}
	return out, loc, nil
}
