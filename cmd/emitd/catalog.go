package main

import (
	"github.com/urfave/cli/v2"

	"github.com/emitd/emitd/cmd/emitd/internal/catalog"
)

func catalogCommand() *cli.Command {
	return &cli.Command{
		Name:  "catalog",
		Usage: "print the event contract: AsyncAPI 3.0, or JSON Schema 2020-12 of every message",
		Description: "Prints, for this configuration, what emitd takes and emits, generated from the definitions the\n" +
			"code itself uses (never a hand-kept copy):\n" +
			"  asyncapi    an AsyncAPI 3.0 document (JSON): the commands channel with every command's payload,\n" +
			"              the results channel, the poison queue and both buses, with each DetailType's message\n" +
			"              and its Detail (domain and analytics variant), and the bindings of the configured\n" +
			"              brokers (Kafka key and headers, SQS/SNS attributes, NATS subject, AMQP exchange and\n" +
			"              routing key, EventBridge bus, source and detail-type)\n" +
			"  jsonschema  one JSON Schema 2020-12 document whose $defs hold a schema per message, each under its\n" +
			"              own $id (a CloudEvent's dataschema is one of them)\n" +
			"The schemas are as strict as emitd: Source and DetailType pinned per message, the metadata keys\n" +
			"required as emitd writes them, no slotStatus in an analytics Detail, no unknown fields and version 1\n" +
			"only in commands. The Detail, JSON text inside the entry, is described with contentMediaType and\n" +
			"contentSchema. A running daemon with the HTTP listener serves the same at /catalog.\n\n" +
			"Examples:\n" +
			"  emitd catalog > asyncapi.json\n" +
			"  emitd catalog --format jsonschema --config configs/kafka.yaml",
		Flags: []cli.Flag{configFlag, logLevelFlag,
			&cli.StringFlag{Name: "format", Value: catalog.FormatAsyncAPI, Usage: "`FORMAT` of the document: asyncapi or jsonschema"},
		},
		Action: func(c *cli.Context) error {
			format := c.String("format")
			if format != catalog.FormatAsyncAPI && format != catalog.FormatJSONSchema {
				return cli.Exit("--format "+format+": want asyncapi or jsonschema", 2)
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			cat, err := catalog.New(cfg)
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			out, err := cat.Render(format)
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			_, err = c.App.Writer.Write(out)
			return err
		},
	}
}
