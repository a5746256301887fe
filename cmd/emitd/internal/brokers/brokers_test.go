package brokers_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/eventbridge"
	"github.com/emitd/emitd/adapters/sns"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/cmd/emitd/internal/brokers"
	"github.com/emitd/emitd/configs"
)

// load reads a shipped configuration; AWS clients get a region and dummy
// credentials from the environment and no shared files, and none of these
// tests reaches the network.
func load(t *testing.T, file string) *configs.Config {
	t.Helper()
	t.Setenv("AWS_REGION", "eu-north-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	cfg, err := configs.Load("../../../../configs/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// tail (a reader without group) must not steal commands from the daemon:
// SQS cannot read a queue without taking its messages.
func TestSQSReaderRefusesTheCommandsQueue(t *testing.T) {
	cfg := load(t, "aws.yaml")
	b, err := brokers.Open(context.Background(), sqs.BrokerName, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sub, err := b.Subscriber(broker.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, topic := range []string{cfg.Commands.Topic, "https://sqs.eu-north-1.amazonaws.com/123456789012/" + cfg.Commands.Topic} {
		_, err = sub.Subscribe(context.Background(), topic)
		if !errors.Is(err, sqs.ErrCommandsQueue) || !strings.Contains(err.Error(), "emitd tail --results") {
			t.Errorf("Subscribe(%s) without group: %v; want ErrSQSCommandsQueue pointing at tail --results", topic, err)
		}
	}
}

func TestEventBridgeCannotBeTailed(t *testing.T) {
	cfg := load(t, "aws.yaml")
	b, err := brokers.Open(context.Background(), eventbridge.BrokerName, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = b.Subscriber(broker.SubscribeOptions{})
	if !errors.Is(err, eventbridge.ErrCannotTail) {
		t.Fatalf("Subscriber: %v; want eventbridge.ErrCannotTail", err)
	}
}

// The AWS brokers open without touching the network (the SDK connects on
// first use). Kafka, NATS and RabbitMQ dial at once: the end-to-end tests
// cover them.
func TestOpenAWSBrokers(t *testing.T) {
	for _, c := range []struct{ file, kind string }{
		{"aws.yaml", sqs.BrokerName}, {"aws.yaml", eventbridge.BrokerName}, {"sns-sqs.yaml", sns.BrokerName},
	} {
		cfg := load(t, c.file)
		b, err := brokers.Open(context.Background(), c.kind, cfg, nil)
		if err != nil {
			t.Errorf("%s %s: %v", c.file, c.kind, err)
			continue
		}
		if b.Name() != c.kind {
			t.Errorf("%s: Name %q", c.kind, b.Name())
		}
		b.Close()
	}
}
