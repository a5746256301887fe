package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/emitd/emitd/configs"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "inspect configurations",
		Subcommands: []*cli.Command{
			{
				Name:  "validate",
				Usage: "check a configuration and print every problem, with its field path",
				Flags: []cli.Flag{configFlag, logLevelFlag, logFormatFlag},
				Action: func(c *cli.Context) error {
					cfg, err := configs.Load(c.String("config"))
					if err != nil {
						return cli.Exit(err.Error(), 2)
					}
					format := cfg.Events.Format
					if cfg.Events.Format == configs.FormatCloudEvents {
						format += " " + cfg.Events.CloudEvents.Mode
					}
					fmt.Fprintf(c.App.Writer, "configuration OK: %s\n  commands: %s (topic %s, dlq %s, results %s)\n  events:   %s (buses %s, %s; %s)\n  store:    %s in %s\n",
						configSource(c), cfg.Commands.Broker, cfg.Commands.Topic, cfg.Commands.DLQTopic, cfg.Commands.ResultsTopic,
						cfg.Events.Broker, cfg.Events.DomainBus, cfg.Events.AnalyticsBus, format, cfg.Store.Driver, cfg.DataDir)
					return nil
				},
			},
			{
				Name: "show",
				Usage: "print the effective configuration (defaults applied, ${VAR} expanded, …File twins read) " +
					"as YAML, every secret redacted",
				Flags: []cli.Flag{configFlag, logLevelFlag, logFormatFlag},
				Action: func(c *cli.Context) error {
					cfg, err := configs.Load(c.String("config"))
					if err != nil {
						return cli.Exit(err.Error(), 2)
					}
					out, err := configs.ShowYAML(cfg)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "# effective configuration of %s (defaults applied, ${VAR} expanded, files read; secrets redacted)\n", configSource(c))
					_, err = c.App.Writer.Write(out)
					return err
				},
			},
			{
				Name:  "show-default",
				Usage: "print the built-in embedded configuration (a starting point for your own)",
				Action: func(c *cli.Context) error {
					_, err := c.App.Writer.Write(configs.EmbeddedYAML())
					return err
				},
			},
		},
	}
}
