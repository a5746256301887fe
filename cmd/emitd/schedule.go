package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/schedule"
)

func scheduleCommand() *cli.Command {
	return &cli.Command{
		Name:  "schedule",
		Usage: "print the built-in schedule: each entry with its next three fire times",
		Description: "The schedule section fires the time-based commands (CreateSlots, UnattendSlots, CloseSlots)\n" +
			"from emitd serve itself, on standard cron text in schedule.timezone. This prints each entry,\n" +
			"its command, and when it fires next (in the zone, and in UTC). It reads only the configuration.",
		Flags: []cli.Flag{configFlag, logLevelFlag, logFormatFlag},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			return printSchedule(c.App.Writer, cfg, time.Now())
		},
	}
}

func printSchedule(w io.Writer, cfg *configs.Config, now time.Time) error {
	entries, loc, err := cfg.ScheduleEntries()
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	s := cfg.Schedule
	state := "on"
	if !s.On() {
		state = "off (schedule.enabled: false): serve fires none of these"
	}
	catchUp := "none"
	if s.CatchUp != nil && *s.CatchUp > 0 {
		catchUp = s.CatchUp.String()
	}
	fmt.Fprintf(w, "schedule %s; timezone %s; catch-up %s\n", state, loc, catchUp)
	if len(entries) == 0 {
		fmt.Fprintln(w, "no entries")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTRY\tCRON\tCOMMAND\tNEXT")
	for _, e := range entries {
		var next []string
		for _, t := range schedule.Next(e.Schedule, now, loc, 3) {
			next = append(next, fireTime(t))
		}
		when := strings.Join(next, ", ")
		if schedule.Repeats(e.Schedule) {
			when = "every " + strings.TrimSpace(strings.TrimPrefix(e.Spec, "@every")) + " from the start of serve (test use only)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.Spec, e.Type, when)
	}
	return tw.Flush()
}

// fireTime is a fire time in its zone, with the UTC instant when they differ.
func fireTime(t time.Time) string {
	s := t.Format("Mon 2006-01-02 15:04 MST")
	if _, off := t.Zone(); off != 0 {
		s += " (" + t.UTC().Format("15:04Z") + ")"
	}
	return s
}
