package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/cmd/emitd/internal/brokers"
	"github.com/emitd/emitd/publisher"
)

func tailCommand() *cli.Command {
	return &cli.Command{
		Name:  "tail",
		Usage: "print envelopes on a bus (or command outcomes) as JSON lines",
		Description: "Prints each envelope on --bus as one line in EventBridge entry form\n" +
			"({\"EventBusName\",\"Source\",\"DetailType\",\"Detail\"}), or, with events.format cloudevents, as a\n" +
			"structured CloudEvent (in either mode), or each command outcome with --results.\n" +
			"It reads without taking anything away from the daemon or other readers; on SQS, where\n" +
			"every receive takes, it refuses unless --consume (and never reads the commands queue).\n\n" +
			"Examples:\n" +
			"  emitd tail --bus reservation -n 2 --from-beginning\n" +
			"  emitd tail --results --timeout 10s",
		Flags: []cli.Flag{
			configFlag,
			logLevelFlag, logFormatFlag,
			&cli.StringFlag{Name: "bus", Usage: "bus `NAME` to read (events.domainBus or events.analyticsBus)"},
			&cli.BoolFlag{Name: "results", Usage: "read command outcomes (commands.resultsTopic) instead of a bus"},
			&cli.IntFlag{Name: "n", Usage: "exit after `N` messages (0: no limit)"},
			&cli.DurationFlag{Name: "timeout", Usage: "exit after `D` (e.g. 30s; 0: no limit); with -n, exits 1 if fewer than N arrived"},
			&cli.BoolFlag{Name: "from-beginning", Usage: "start from what the bus retains, not from new messages"},
			&cli.BoolFlag{Name: "consume", Usage: "on SQS, where every receive takes, read anyway and delete what is shown"},
			&cli.StringFlag{Name: "field", Usage: "print only the value at `PATH` (e.g. data.slotId, metadata.id in an envelope's Detail or a CloudEvent's data; status, reason in an outcome)"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			bus, results := c.String("bus"), c.Bool("results")
			kind, topic := cfg.Events.Broker, bus
			switch {
			case results && bus != "":
				return cli.Exit("give either --bus or --results, not both", 2)
			case results:
				kind, topic = cfg.Commands.Broker, cfg.Commands.ResultsTopic
			case bus == "":
				return cli.Exit(fmt.Sprintf("--bus is required (%s or %s), or --results", cfg.Events.DomainBus, cfg.Events.AnalyticsBus), 2)
			case bus != cfg.Events.DomainBus && bus != cfg.Events.AnalyticsBus:
				return cli.Exit(fmt.Sprintf("unknown bus %q: this configuration has %s and %s", bus, cfg.Events.DomainBus, cfg.Events.AnalyticsBus), 2)
			}
			ctx, stop := signalContext(c.Context)
			defer stop()
			if d := c.Duration("timeout"); d > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			b, err := brokers.Open(ctx, kind, cfg, newLogger(c))
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			defer b.Close()
			sub, err := b.Subscriber(broker.SubscribeOptions{FromBeginning: c.Bool("from-beginning"), Consume: c.Bool("consume")})
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			defer sub.Close()
			ch, err := sub.Subscribe(ctx, topic)
			if err != nil {
				return cli.Exit(fmt.Sprintf("subscribe to %s: %v", topic, err), 1)
			}
			limit, seen := c.Int("n"), 0
			for {
				select {
				case <-ctx.Done():
					if limit > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
						return cli.Exit(fmt.Sprintf("timed out after %s with %d of %d messages", c.Duration("timeout"), seen, limit), 1)
					}
					return nil
				case msg, ok := <-ch:
					if !ok {
						return nil
					}
					line := string(msg.Payload)
					if !results {
						// A binary-mode CloudEvent prints whole, attributes
						// included: in structured form.
						if ce, isCE, err := publisher.CloudEventFromMessage(msg); err == nil && isCE {
							b, err := ce.MarshalStructured()
							if err != nil {
								return cli.Exit(err.Error(), 1)
							}
							line = string(b)
						}
					}
					if path := c.String("field"); path != "" {
						if line, err = field(msg.Payload, path); err != nil {
							return cli.Exit(err.Error(), 1)
						}
					}
					fmt.Fprintln(c.App.Writer, line)
					msg.Ack()
					seen++
					if limit > 0 && seen >= limit {
						return nil
					}
				}
			}
		},
	}
}

// field returns the value at a dotted path of a message: inside the Detail
// of an envelope entry, else in the message JSON itself. Strings print bare.
func field(payload []byte, path string) (string, error) {
	var doc map[string]any
	if err := json.Unmarshal(payload, &doc); err != nil {
		return "", fmt.Errorf("--field: message is not a JSON object: %w", err)
	}
	if d, ok := doc["Detail"].(string); ok {
		if err := json.Unmarshal([]byte(d), &doc); err != nil {
			return "", fmt.Errorf("--field: Detail is not a JSON object: %w", err)
		}
	} else if data, ok := doc["data"].(map[string]any); ok && doc["specversion"] != nil {
		doc = data // a CloudEvent: its data is the Detail
	}
	var v any = doc
	for _, key := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("--field %s: %q is not inside an object", path, key)
		}
		if v, ok = m[key]; !ok {
			return "", fmt.Errorf("--field %s: no %q here", path, key)
		}
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}
