// Package schedule fires emitd's time-based commands (CreateSlots,
// UnattendSlots, CloseSlots) on their cron schedule, so that no cron job
// outside emitd is needed.
//
// A firing puts its command on the commands topic like any sender would,
// with a command id derived from the entry's name and the fire time: a
// firing made twice (a restart's catch-up, a second instance, a publish
// retried after a lost acknowledgement) carries the same id, and the
// pipeline processes a command id once. Only the instance that holds the
// store lease "schedule" fires, so with several instances on one
// PostgreSQL store the commands are not even sent twice in the common case.
//
// Cron text is parsed by robfig/cron/v3 (standard five fields, the
// descriptors such as @hourly, and @every DURATION). Its runner is not used:
// it reads time.Now itself (no clock can be injected, so tests could not
// move time) and knows nothing of catch-up or leases, which is most of what
// this package does; the loop that waits for the next fire time is short.
package schedule

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	// The zone database is embedded, so schedule.timezone works on hosts
	// without /usr/share/zoneinfo (distroless and scratch images).
	_ "time/tzdata"

	"github.com/google/uuid"
	"github.com/robfig/cron/v3"

	"github.com/emitd/emitd/domain"
)

// CommandTypes are the commands a schedule may fire: the time-based ones.
var CommandTypes = []domain.CommandType{domain.CmdCreateSlots, domain.CmdUnattendSlots, domain.CmdCloseSlots}

// parser reads standard cron (minute hour day-of-month month day-of-week)
// and the descriptors (@hourly, @daily, @every 5s, ...).
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse parses cron text. A time zone prefix (TZ=, CRON_TZ=) is refused:
// the zone is schedule.timezone, one for every entry.
func Parse(spec string) (cron.Schedule, error) {
	s := strings.TrimSpace(spec)
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return nil, errors.New("no TZ= prefix: the time zone is schedule.timezone")
	}
	if s == "" {
		return nil, errors.New("required, e.g. \"0 7-17 * * *\" or \"@every 5s\"")
	}
	if every, ok := strings.CutPrefix(s, "@every "); ok {
		// robfig rounds a shorter delay up to 1s without a word.
		if d, err := time.ParseDuration(strings.TrimSpace(every)); err == nil && d < time.Second {
			return nil, errors.New("@every needs at least 1s")
		}
	}
	return parser.Parse(s)
}

// Repeats says whether a schedule is "@every": its fire times depend on when
// emitd started, so they mean nothing across restarts, and such an entry is
// never caught up.
func Repeats(s cron.Schedule) bool {
	_, ok := s.(cron.ConstantDelaySchedule)
	return ok
}

// LoadLocation is time.LoadLocation from the embedded database; "" is UTC.
// "Local" is refused: a schedule must not change with the host it runs on.
func LoadLocation(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return nil, errors.New(`"Local" depends on the host; name the zone, e.g. Europe/Stockholm, or UTC`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q: want an IANA name such as Europe/Stockholm, or UTC", name)
	}
	return loc, nil
}

// Entry is one scheduled command.
type Entry struct {
	Name     string
	Spec     string // the cron text, as configured
	Schedule cron.Schedule
	Type     domain.CommandType
	// Data is the command's data as configured (nil: none). CreateSlots
	// without a date gets the fire time's date in the schedule's zone, so
	// that a firing caught up or processed after midnight still creates the
	// day it was meant for.
	Data map[string]any
}

// NewEntry parses spec and checks the command (type and data) as the
// pipeline will; errors name the part at fault ("cron", "command.type",
// "command.data.count").
func NewEntry(name, spec string, typ domain.CommandType, data map[string]any) (Entry, *FieldError) {
	sched, err := Parse(spec)
	if err != nil {
		return Entry{}, &FieldError{Field: "cron", Msg: fmt.Sprintf("%q: %v", spec, err)}
	}
	e := Entry{Name: name, Spec: spec, Schedule: sched, Type: typ, Data: data}
	known := false
	for _, t := range CommandTypes {
		known = known || t == typ
	}
	if !known {
		names := make([]string, len(CommandTypes))
		for i, t := range CommandTypes {
			names[i] = string(t)
		}
		what := "is not a command type"
		if typ.Known() {
			what = "is not a time-based command"
		}
		return e, &FieldError{Field: "command.type", Msg: fmt.Sprintf("%q %s; want one of %s", typ, what, strings.Join(names, ", "))}
	}
	if _, _, err := e.Command(time.Date(2030, 1, 1, 5, 0, 0, 0, time.UTC)); err != nil {
		var ice *domain.InvalidCommandError
		if errors.As(err, &ice) && ice.Field != "" {
			return e, &FieldError{Field: "command." + ice.Field, Msg: ice.Reason}
		}
		return e, &FieldError{Field: "command", Msg: err.Error()}
	}
	return e, nil
}

// FieldError is a problem with one part of an entry.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// namespace makes command ids from entry names and fire times (UUID v5).
var namespace = uuid.MustParse("6b1d6f0e-5c8a-4f61-9c39-5f1f0c1e7d21")

// CommandID is the id of the command that entry name fires at at: the
// same firing always carries the same id, whichever instance makes it.
func CommandID(name string, at time.Time) string {
	return uuid.NewSHA1(namespace, []byte("emitd.schedule/"+name+"@"+at.UTC().Format(time.RFC3339Nano))).String()
}

// Command is the command entry fires at at, as it goes on the commands
// topic, validated.
func (e Entry) Command(at time.Time) ([]byte, domain.Command, error) {
	data := map[string]any{}
	for k, v := range e.Data {
		if t, ok := v.(time.Time); ok { // YAML reads 2026-12-01 as a timestamp
			v = t.Format("2006-01-02")
		}
		data[k] = v
	}
	if _, has := data["date"]; e.Type == domain.CmdCreateSlots && !has {
		data["date"] = at.Format("2006-01-02")
	}
	cmd := map[string]any{"type": e.Type, "id": CommandID(e.Name, at), "correlationId": CommandID(e.Name, at)}
	if len(data) > 0 {
		cmd["data"] = data
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, domain.Command{}, &domain.InvalidCommandError{Kind: domain.Invalid, Field: "data", Reason: err.Error()}
	}
	parsed, err := domain.ParseCommand(b)
	return b, parsed, err
}

// Next returns the n fire times of s after from, in loc.
func Next(s cron.Schedule, from time.Time, loc *time.Location, n int) []time.Time {
	out := make([]time.Time, 0, n)
	t := from.In(loc)
	for range n {
		t = s.Next(t)
		if t.IsZero() {
			break // a date that never comes (Feb 30)
		}
		out = append(out, t)
	}
	return out
}

// latest is the last fire time of s in (from, to], if any.
func latest(s cron.Schedule, from, to time.Time) (time.Time, bool) {
	var last time.Time
	for t := s.Next(from); !t.IsZero() && !t.After(to); t = s.Next(t) {
		last = t
	}
	return last, !last.IsZero()
}
