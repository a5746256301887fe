package main

import (
	"github.com/ThreeDotsLabs/watermill"
	"github.com/urfave/cli/v2"

	"github.com/emitd/emitd/cmd/emitd/internal/daemon"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the daemon until SIGINT or SIGTERM",
		Description: "Consumes commands from commands.topic, commits state and envelopes, relays envelopes to\n" +
			"their buses. On SIGINT/SIGTERM it stops taking commands, lets in-flight ones finish,\n" +
			"flushes the outbox and exits 0. A second serve on the same dataDir is refused.",
		Flags: []cli.Flag{configFlag, logLevelFlag, logFormatFlag},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			logger := newLogger(c)
			ctx, stop := signalContext(c.Context)
			defer stop()
			d, err := daemon.New(ctx, cfg, logger)
			if err != nil {
				return cli.Exit("cannot start: "+err.Error(), 1)
			}
			go func() {
				select {
				case <-d.Running():
					logger.Info("emitd serving", watermill.LogFields{
						"config": configSource(c), "commands": cfg.Commands.Broker + ":" + cfg.Commands.Topic,
						"events":   cfg.Events.Broker + ":" + cfg.Events.DomainBus + "," + cfg.Events.AnalyticsBus,
						"data_dir": cfg.DataDir})
				case <-ctx.Done():
				}
			}()
			if err := d.Run(ctx); err != nil {
				return cli.Exit("stopped with errors: "+err.Error(), 1)
			}
			logger.Info("emitd stopped cleanly", nil)
			return nil
		},
	}
}
