package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/cmd/emitd/internal/brokers"
	"github.com/emitd/emitd/cmd/emitd/internal/stores"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
	"github.com/emitd/emitd/schedule"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "what emitd holds and whether anything needs attention; exit 0 when all is well, 1 when not",
		Description: "Reads the store (outbox depth and the oldest pending envelope's age, dead letters by kind and\n" +
			"reason code, commands processed within store.retention), the poison queue's depth where the broker\n" +
			"can tell (JetStream, SQS, RabbitMQ), the schedule's next firings, and, when http.listen is set,\n" +
			"the /readyz of the emitd serve behind it. It only reads: it never moves or acknowledges a message.\n\n" +
			"Exit status: 0 all is well; 1 something needs attention (dead letters in the store or on the\n" +
			"poison queue, relay lag over http.maxRelayLag, serve not ready or not reachable, the store not\n" +
			"answering), each listed under \"attention\"; 2 the configuration is invalid.",
		Flags: []cli.Flag{configFlag, logLevelFlag, logFormatFlag},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
			defer cancel()
			attention := status(ctx, c, cfg, c.App.Writer)
			if len(attention) == 0 {
				fmt.Fprintln(c.App.Writer, "all is well")
				return nil
			}
			fmt.Fprintln(c.App.Writer, "attention:")
			for _, a := range attention {
				fmt.Fprintln(c.App.Writer, "  - "+a)
			}
			return cli.Exit("", 1)
		},
	}
}

// status prints what it finds and returns what needs attention.
func status(ctx context.Context, c *cli.Context, cfg *configs.Config, w io.Writer) []string {
	var attention []string
	now := time.Now()
	st, err := stores.Open(ctx, cfg, stores.Operator)
	if err != nil {
		fmt.Fprintf(w, "store:        cannot open: %v\n", err)
		attention = append(attention, "the store cannot be read")
	} else {
		defer st.Close()
		attention = append(attention, storeStatus(ctx, st, cfg, now, w)...)
	}
	attention = append(attention, poisonStatus(ctx, c, cfg, w)...)

	entries, loc, err := cfg.ScheduleEntries()
	switch {
	case err != nil:
		fmt.Fprintf(w, "schedule:     %v\n", err)
	case !cfg.Schedule.On() || len(entries) == 0:
		fmt.Fprintln(w, "schedule:     off")
	default:
		var next []string
		for _, e := range entries {
			if t := schedule.Next(e.Schedule, now, loc, 1); len(t) > 0 && !schedule.Repeats(e.Schedule) {
				next = append(next, e.Name+" "+fireTime(t[0]))
			} else if schedule.Repeats(e.Schedule) {
				next = append(next, e.Name+" "+e.Spec)
			}
		}
		fmt.Fprintf(w, "next firings: %s\n", strings.Join(next, "; "))
	}
	return append(attention, serveStatus(ctx, cfg, w)...)
}

func storeStatus(ctx context.Context, st stores.Store, cfg *configs.Config, now time.Time, w io.Writer) []string {
	var attention []string
	ob, err := st.Outboxes(ctx)
	if err != nil {
		fmt.Fprintf(w, "outbox:       cannot read: %v\n", err)
		return []string{"the store does not answer"}
	}
	for _, o := range []struct {
		what, name string
		b          publisher.Backlog
	}{{"outbox:      ", "envelopes", ob.Envelopes}, {"outcomes:    ", "outcomes", ob.Outcomes}} {
		if o.b.Pending == 0 {
			fmt.Fprintf(w, "%s 0 %s waiting\n", o.what, o.name)
			continue
		}
		age := o.b.Age(now)
		fmt.Fprintf(w, "%s %d %s waiting, the oldest for %s\n", o.what, o.b.Pending, o.name, age.Round(time.Second))
		if age > cfg.HTTP.MaxRelayLag {
			attention = append(attention, fmt.Sprintf("the %s relay lags: its oldest has waited %s, over http.maxRelayLag (%s)",
				strings.TrimSuffix(o.name, "s"), age.Round(time.Second), cfg.HTTP.MaxRelayLag))
		}
	}
	counts, err := st.DeadLetterCounts(ctx)
	if err != nil {
		fmt.Fprintf(w, "dead letters: cannot read: %v\n", err)
		attention = append(attention, "the store does not answer")
	} else {
		var total int64
		var parts []string
		for _, d := range counts {
			code := d.Code
			if code == "" {
				code = "unrecorded"
			}
			parts = append(parts, fmt.Sprintf("%s/%s %d", d.Kind, code, d.Count))
			total += d.Count
		}
		if total == 0 {
			fmt.Fprintln(w, "dead letters: none in the store")
		} else {
			fmt.Fprintf(w, "dead letters: %d in the store: %s\n", total, strings.Join(parts, ", "))
			attention = append(attention, fmt.Sprintf("%d dead letters in the store (emitd dlq list)", total))
		}
	}
	processed, err := st.ProcessedCounts(ctx)
	if err != nil {
		fmt.Fprintf(w, "processed:    cannot read: %v\n", err)
	} else {
		var parts []string
		for _, s := range []string{domain.OutcomeAccepted, domain.OutcomeRejected, domain.OutcomeDeadLettered} {
			parts = append(parts, fmt.Sprintf("%s %d", s, processed[s]))
		}
		fmt.Fprintf(w, "processed:    %s (command ids kept for store.retention, %s)\n", strings.Join(parts, ", "), cfg.Store.Retention)
	}
	return attention
}

// poisonStatus reads the poison queue's depth, where the broker tells it,
// without taking anything from it.
func poisonStatus(ctx context.Context, c *cli.Context, cfg *configs.Config, w io.Writer) []string {
	b, err := brokers.Open(ctx, cfg.Commands.Broker, cfg, newLogger(c))
	if err != nil {
		fmt.Fprintf(w, "poison queue: %s: cannot tell (%v)\n", cfg.Commands.DLQTopic, err)
		return nil
	}
	defer b.Close()
	n, ok, err := broker.QueueDepth(ctx, b, cfg.Commands.DLQTopic, broker.DeadLetterGroup)
	switch {
	case !ok:
		fmt.Fprintf(w, "poison queue: %s: %s cannot tell its depth (emitd dlq list moves it into the store)\n", cfg.Commands.DLQTopic, cfg.Commands.Broker)
	case err != nil:
		fmt.Fprintf(w, "poison queue: %s: cannot tell (%v)\n", cfg.Commands.DLQTopic, err)
	case n > 0:
		fmt.Fprintf(w, "poison queue: %s: %d waiting\n", cfg.Commands.DLQTopic, n)
		return []string{fmt.Sprintf("%d dead letters on the poison queue %s (emitd dlq list moves them into the store)", n, cfg.Commands.DLQTopic)}
	default:
		fmt.Fprintf(w, "poison queue: %s: 0 waiting\n", cfg.Commands.DLQTopic)
	}
	return nil
}

// serveStatus asks the serve behind http.listen whether it is ready.
func serveStatus(ctx context.Context, cfg *configs.Config, w io.Writer) []string {
	addr := cfg.HTTP.ListenAddr()
	if addr == "" {
		fmt.Fprintln(w, "serve:        not asked (http.listen is off)")
		return nil
	}
	host, port, _ := net.SplitHostPort(addr)
	if port == "0" {
		fmt.Fprintln(w, "serve:        not asked (http.listen has port 0)")
		return nil
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // listening on every address: ask on loopback
	}
	url := "http://" + net.JoinHostPort(host, port) + "/readyz"
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(w, "serve:        not reachable at %s (%v)\n", url, err)
		return []string{"emitd serve is not reachable at " + url}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	if resp.StatusCode == http.StatusOK {
		fmt.Fprintf(w, "serve:        ready (%s)\n", url)
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if len(lines) > 0 && strings.HasPrefix(lines[0], "not ready") {
		lines = lines[1:]
	}
	sort.Strings(lines)
	fmt.Fprintf(w, "serve:        not ready (%s, %d): %s\n", url, resp.StatusCode, strings.Join(lines, "; "))
	return []string{"emitd serve is not ready: " + strings.Join(lines, "; ")}
}
