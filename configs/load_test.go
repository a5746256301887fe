package configs_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	_ "github.com/emitd/emitd/adapters/all" // every broker
	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/configs"
)

func TestEmbeddedDefaultIsValid(t *testing.T) {
	cfg, err := configs.Load("")
	if err != nil {
		t.Fatalf("built-in configuration: %v", err)
	}
	if cfg.Commands.Broker != natsjs.EmbeddedName || cfg.Events.DomainBus != "reservation" ||
		cfg.Events.AnalyticsBus != "analytics" || cfg.DataDir != "./data" || natsjs.EmbeddedSectionOf(cfg).Port != natsjs.DefaultEmbeddedPort {
		t.Errorf("unexpected default: %+v", cfg)
	}
}

// Every problem is reported at once, each with its field path; unknown keys
// (typos) are errors, not silently ignored.
func TestParseReportsEveryProblemWithItsPath(t *testing.T) {
	doc := strings.Replace(string(configs.EmbeddedYAML()), "  domainBus: reservation", "  domainBuss: reservation", 1)
	doc = strings.Replace(doc, "lifecycleStage: production", "lifecycleStage: prod", 1)
	doc = strings.Replace(doc, "  team: MyDemoTeam\n", "", 1)
	doc = strings.Replace(doc, embeddedPort, "port: 70000", 1)
	doc += "surprise: 1\n"
	_, err := configs.Parse([]byte(doc))
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		"events.domainBuss: unknown field (line",
		"surprise: unknown field",
		"events.domainBus: required",
		"metadata.lifecycleStage",
		"metadata.team",
		"brokers.embedded.port: must be between 1 and 65535",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not report %q:\n%s", want, msg)
		}
	}
}

func TestParseRejectsMisfits(t *testing.T) {
	cases := map[string]struct{ from, to, want string }{
		"same bus twice":    {"analyticsBus: analytics", "analyticsBus: reservation", "events.analyticsBus: must differ"},
		"same topic twice":  {"dlqTopic: slot-commands-dlq", "dlqTopic: slot-commands", "each topic has one purpose"},
		"unknown broker":    {"commands:\n  broker: embedded", "commands:\n  broker: carrier-pigeon", "commands.broker: \"carrier-pigeon\" is not one of"},
		"public embedded":   {"host: 127.0.0.1               # loopback only", "host: 0.0.0.0", "brokers.embedded.host: must be a loopback address"},
		"dsn for sqlite":    {"driver: sqlite                  # file dataDir/emitd.db", "driver: sqlite\n  dsn: postgres://x", "store.dsn: unknown field"},
		"unused kafka part": {"brokers:\n", "brokers:\n  kafka:\n    brokers: [127.0.0.1:9092]\n", "brokers.kafka: set, but neither"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			doc := string(configs.EmbeddedYAML())
			if !strings.Contains(doc, c.from) {
				t.Fatalf("fixture drifted: %q not in embedded.yaml", c.from)
			}
			_, err := configs.Parse([]byte(strings.Replace(doc, c.from, c.to, 1)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// events.format and events.cloudevents.mode: eventbridge is the default;
// CloudEvents is refused where no binding carries it, naming the field.
func TestEventFormat(t *testing.T) {
	cfg, err := configs.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Events.Format != configs.FormatEventBridge || cfg.Events.CloudEvents.Mode != "" {
		t.Errorf("default format %q mode %q, want eventbridge and no mode", cfg.Events.Format, cfg.Events.CloudEvents.Mode)
	}
	events := "events:\n  broker: embedded\n"
	for name, c := range map[string]struct{ events, file, want string }{
		"structured by default": {events + "  format: cloudevents\n", "embedded.yaml", ""},
		"binary on embedded":    {events + "  format: cloudevents\n  cloudevents:\n    mode: binary\n", "embedded.yaml", ""},
		"unknown format":        {events + "  format: avro\n", "embedded.yaml", `events.format: "avro" is not one of eventbridge, cloudevents`},
		"unknown mode":          {events + "  format: cloudevents\n  cloudevents:\n    mode: batched\n", "embedded.yaml", `events.cloudevents.mode: "batched" is not one of structured, binary`},
		"mode without format":   {events + "  cloudevents:\n    mode: binary\n", "embedded.yaml", "events.cloudevents.mode: only applies to events.format cloudevents"},
		"typo under cloudevents": {events + "  format: cloudevents\n  cloudevents:\n    mood: binary\n", "embedded.yaml",
			"events.cloudevents.mood: unknown field"},
		"eventbridge stays entries": {"events:\n  broker: eventbridge\n  format: cloudevents\n", "aws.yaml",
			"events.format: cloudevents cannot be used with events.broker eventbridge"},
		"binary on sns": {"events:\n  broker: sns\n  format: cloudevents\n  cloudevents:\n    mode: binary\n", "sns-sqs.yaml",
			"events.cloudevents.mode: binary needs a CloudEvents protocol binding with headers"},
		"structured on sns": {"events:\n  broker: sns\n  format: cloudevents\n", "sns-sqs.yaml", ""},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(c.file)
			if err != nil {
				t.Fatal(err)
			}
			doc := string(b)
			from := "events:\n  broker: " + strings.SplitN(strings.SplitN(c.events, "broker: ", 2)[1], "\n", 2)[0] + "\n"
			if !strings.Contains(doc, from) {
				t.Fatalf("fixture drifted: %q not in %s", from, c.file)
			}
			cfg, err := configs.Parse([]byte(strings.Replace(doc, from, c.events, 1)))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want == "":
				if cfg.Events.Format != configs.FormatCloudEvents || cfg.Events.CloudEvents.Mode == "" {
					t.Errorf("format %q mode %q", cfg.Events.Format, cfg.Events.CloudEvents.Mode)
				}
			case err == nil || !strings.Contains(err.Error(), c.want):
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// Each broker's section lives with its broker, and the file is still checked
// as one: an unknown broker, an unknown key inside a broker's section and a
// value of the wrong type are each reported with their path (and line).
func TestBrokerSectionsAreCheckedLikeTheRest(t *testing.T) {
	doc := strings.Replace(string(configs.EmbeddedYAML()), "brokers:\n", "brokers:\n  carrierPigeon:\n    wings: 2\n", 1)
	doc = strings.Replace(doc, embeddedPort, embeddedPort+"\n    hostt: x", 1)
	_, err := configs.Parse([]byte(doc))
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{
		"brokers.carrierPigeon: unknown field (line",
		"known fields here: amqp, embedded, eventbridge, kafka, nats, sns, sqs",
		"brokers.embedded.hostt: unknown field (line",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %q:\n%v", want, err)
		}
	}
	_, err = configs.Parse([]byte(strings.Replace(string(configs.EmbeddedYAML()), embeddedPort, fmt.Sprintf("port: [%d]", natsjs.DefaultEmbeddedPort), 1)))
	if err == nil || !strings.Contains(err.Error(), "cannot unmarshal !!seq into int") {
		t.Errorf("a list for brokers.embedded.port: %v", err)
	}
}

// embeddedPort is the port line of the shipped embedded.yaml.
var embeddedPort = fmt.Sprintf("port: %d", natsjs.DefaultEmbeddedPort)
