package configs_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emitd/emitd/configs"
)

// Every shipped configuration loads and validates as it is.
func TestShippedConfigsValidate(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"amqp.yaml", "aws.yaml", "embedded.yaml", "kafka.yaml", "nats.yaml", "postgres.yaml", "sns-sqs.yaml"}
	// postgres.yaml leaves store.url to the environment, as it advises.
	t.Setenv(configs.StoreURLEnv, "postgres://emitd@db:5432/emitd?sslmode=verify-full")
	for _, w := range want {
		if _, err := os.Stat(w); err != nil {
			t.Errorf("configs/%s is missing: every broker setup ships a documented file", w)
		}
	}
	brokers := map[string][2]string{ // file -> commands.broker, events.broker
		"amqp.yaml": {"amqp", "amqp"}, "aws.yaml": {"sqs", "eventbridge"}, "embedded.yaml": {"embedded", "embedded"},
		"kafka.yaml": {"kafka", "kafka"}, "nats.yaml": {"nats", "nats"}, "sns-sqs.yaml": {"sqs", "sns"},
		"postgres.yaml": {"nats", "nats"},
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			cfg, err := configs.Load(f)
			if err != nil {
				t.Fatalf("configs/%s does not load:\n%v", f, err)
			}
			if b, ok := brokers[f]; ok && (cfg.Commands.Broker != b[0] || cfg.Events.Broker != b[1]) {
				t.Errorf("commands %s, events %s; want %s, %s", cfg.Commands.Broker, cfg.Events.Broker, b[0], b[1])
			}
		})
	}
}

// problems parses the shipped file with each old->new replacement applied
// (each must match) and returns the problems.
func problems(t *testing.T, file string, replace ...string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("%s has no %q to replace", file, replace[i])
		}
		s = strings.Replace(s, replace[i], replace[i+1], 1)
	}
	_, err = configs.Parse([]byte(s))
	if err == nil {
		return nil
	}
	var p configs.Problems
	if !errors.As(err, &p) {
		t.Fatalf("error %v is not configs.Problems", err)
	}
	return p
}

func TestBrokerProblemsNameTheField(t *testing.T) {
	cases := []struct {
		name    string
		file    string
		replace []string
		path    string // the problem starts with "path: "
		says    string // and contains this
	}{
		{"events on sns without its section", "aws.yaml",
			[]string{"broker: eventbridge", "broker: sns"},
			"brokers.sns", "required: events.broker is sns"},
		{"eventbridge section on an SQS-only deployment", "sns-sqs.yaml",
			[]string{"broker: sns", "broker: sqs", "  sns:\n", "  eventbridge:\n"},
			"brokers.eventbridge", "neither commands.broker nor events.broker"},
		{"commands cannot come from eventbridge", "aws.yaml",
			[]string{"broker: sqs", "broker: eventbridge"},
			"commands.broker", `"eventbridge" is not one of`},
		{"a Kafka option under sqs", "aws.yaml",
			[]string{"    createIfMissing: true         # create missing queues", "    partitions: 4\n    createIfMissing: true #"},
			"brokers.sqs.partitions", "unknown field"},
		{"fifo queues must end in .fifo", "aws.yaml",
			[]string{"createIfMissing: true         # create missing queues", "fifo: true\n    createIfMissing: true #"},
			"commands.topic", "must be a FIFO queue, whose name ends in .fifo"},
		{"fifo sns topics must end in .fifo", "sns-sqs.yaml",
			[]string{"createIfMissing: true         # create missing topics", "fifo: true\n    createIfMissing: true #"},
			"events.domainBus", "must be a FIFO topic"},
		{"sqs queue name", "aws.yaml",
			[]string{"dlqTopic: slot-commands-dlq", "dlqTopic: slot commands dlq"},
			"commands.dlqTopic", "not a valid SQS queue name"},
		{"sqs visibility shorter than the retry budget", "aws.yaml",
			[]string{"visibilityTimeout: 30s", "visibilityTimeout: 20s"},
			"router.retry.maxElapsed", "below 20s (brokers.sqs.visibilityTimeout)"},
		{"sqs long poll over 20s", "aws.yaml",
			[]string{"receiveWaitTime: 20s", "receiveWaitTime: 30s"},
			"brokers.sqs.receiveWaitTime", "between 1s and 20s"},
		{"sqs endpoint without scheme", "aws.yaml",
			[]string{"# endpoint: http://127.0.0.1:4566", "endpoint: 127.0.0.1:4566 #"},
			"brokers.sqs.endpoint", "want a URL"},
		{"eventbridge entry cap", "aws.yaml",
			[]string{"maxEntryBytes: 1048576", "maxEntryBytes: 2097152"},
			"brokers.eventbridge.maxEntryBytes", "1 MiB cap"},
		{"eventbridge bus name", "aws.yaml",
			[]string{"analyticsBus: analytics", "analyticsBus: ana lytics"},
			"events.analyticsBus", "not a valid event bus name"},
		{"eventbridge region", "aws.yaml",
			[]string{"    # region: eu-north-1          # default: AWS_REGION / the profile\n    # endpoint: http://127.0.0.1:4010",
				"    region: Stockholm\n    # endpoint: http://127.0.0.1:4010"},
			"brokers.eventbridge.region", "not an AWS region name"},
		{"sns account id", "sns-sqs.yaml",
			[]string{`# accountId: "123456789012"`, `accountId: "1234"`},
			"brokers.sns.accountId", "12-digit"},
		{"kafka brokers required", "kafka.yaml",
			[]string{"brokers: [127.0.0.1:9092]", "brokers: []"},
			"brokers.kafka.brokers", "required"},
		{"kafka broker with a scheme", "kafka.yaml",
			[]string{"brokers: [127.0.0.1:9092]", "brokers: [127.0.0.1:9092, 'kafka://k2:9092']"},
			"brokers.kafka.brokers[1]", "want host:port"},
		{"kafka topic name", "kafka.yaml",
			[]string{"domainBus: reservation", "domainBus: reservation/eu"},
			"events.domainBus", "not a valid Kafka topic name"},
		{"kafka partitions without createIfMissing", "kafka.yaml",
			[]string{"createIfMissing: true", "createIfMissing: false"},
			"brokers.kafka.createIfMissing", "only apply to topics emitd creates"},
		{"kafka version", "kafka.yaml",
			[]string{"version: 2.8.0", "version: latest"},
			"brokers.kafka.version", "want a Kafka version"},
		{"nats url", "nats.yaml",
			[]string{"url: nats://127.0.0.1:4222", "url: http://127.0.0.1:4222"},
			"brokers.nats.url", "want nats://host:port"},
		{"nats subject with a wildcard", "nats.yaml",
			[]string{"domainBus: reservation", "domainBus: reservation.*"},
			"events.domainBus", "not a valid NATS subject"},
		{"nats group", "nats.yaml",
			[]string{"group: emitd", "group: emitd.eu"},
			"commands.group", "names a JetStream consumer"},
		{"a bus named like a commands topic on the same broker", "kafka.yaml",
			[]string{"analyticsBus: analytics", "analyticsBus: slot-command-results"},
			"events.analyticsBus", "is also commands.resultsTopic"},
		{"amqp url", "amqp.yaml",
			[]string{"url: amqp://guest:guest@127.0.0.1:5672/", "url: 127.0.0.1:5672"},
			"brokers.amqp.url", "want amqp://"},
		{"amqp routing key wildcard", "amqp.yaml",
			[]string{"analyticsBus: analytics", "analyticsBus: analytics.#"},
			"events.analyticsBus", "not usable as an AMQP routing key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := problems(t, c.file, c.replace...)
			for _, p := range got {
				if strings.HasPrefix(p, c.path+": ") && strings.Contains(p, c.says) {
					return
				}
			}
			t.Errorf("want a problem %q containing %q; got:\n  %s", c.path+": ...", c.says, strings.Join(got, "\n  "))
		})
	}
}

// Valid variations stay valid: ARNs and URLs for AWS names, FIFO names.
func TestBrokerVariationsValidate(t *testing.T) {
	cases := []struct {
		name    string
		file    string
		replace []string
	}{
		{"sqs queue URL and fifo", "aws.yaml", []string{
			"topic: slot-commands ", "topic: https://sqs.eu-north-1.amazonaws.com/123456789012/slot-commands.fifo ",
			"dlqTopic: slot-commands-dlq", "dlqTopic: slot-commands-dlq.fifo",
			"resultsTopic: slot-command-results", "resultsTopic: slot-command-results.fifo",
			"createIfMissing: true         # create missing queues", "fifo: true\n    createIfMissing: true #"}},
		{"eventbridge bus ARN", "aws.yaml", []string{
			"domainBus: reservation", "domainBus: arn:aws:events:eu-north-1:123456789012:event-bus/reservation"}},
		{"sns topic ARN", "sns-sqs.yaml", []string{
			"domainBus: reservation", "domainBus: arn:aws:sns:eu-north-1:123456789012:reservation"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := problems(t, c.file, c.replace...); len(got) > 0 {
				t.Errorf("want valid; got:\n  %s", strings.Join(got, "\n  "))
			}
		})
	}
}
