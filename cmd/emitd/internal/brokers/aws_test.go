package brokers_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/eventbridge"
	"github.com/emitd/emitd/adapters/eventbridge/ebtest"
	"github.com/emitd/emitd/adapters/sns"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/cmd/emitd/internal/brokers"
	"github.com/emitd/emitd/configs"
)

// loadEdited reads a shipped configuration with each old->new replacement
// applied (each must match).
func loadEdited(t *testing.T, file string, replace ...string) *configs.Config {
	t.Helper()
	b, err := os.ReadFile("../../../../configs/" + file)
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
	cfg, err := configs.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// What is missing at start is said by name, with the fix, against the
// emulators' real answers: the SDK's typed errors (QueueDoesNotExist,
// NotFoundException, ResourceNotFoundException) are what EnsureTopics
// recognises, not the wording of a message.
func TestEnsureTopicsNamesWhatIsMissing(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	eb := ebtest.New(ebtest.Options{Buses: []string{"reservation"}})
	t.Cleanup(eb.Close)
	awstest.SetEnv(t, map[string]string{
		"AWS_ENDPOINT_URL_SQS": endpoint, "AWS_ENDPOINT_URL_SNS": endpoint, "AWS_ENDPOINT_URL_EVENTBRIDGE": eb.URL,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	open := func(kind string, cfg *configs.Config) broker.Broker {
		t.Helper()
		b, err := brokers.Open(ctx, kind, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	wantErr := func(what string, err error, says ...string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", what)
			return
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %v\nwant it to say %q", what, err, s)
			}
		}
	}

	t.Run("sqs queue", func(t *testing.T) {
		cfg := loadEdited(t, "aws.yaml", "createIfMissing: true         # create missing queues", "createIfMissing: false #")
		err := open(sqs.BrokerName, cfg).EnsureTopics(ctx, cfg.Commands.Topic)
		wantErr("missing queue", err, `SQS queue "slot-commands" (commands.topic) does not exist`, "set brokers.sqs.createIfMissing: true")
		created := loadEdited(t, "aws.yaml") // createIfMissing: true
		if err := open(sqs.BrokerName, created).EnsureTopics(ctx, cfg.Commands.Topic); err != nil {
			t.Fatalf("creating the queue: %v", err)
		}
		if err := open(sqs.BrokerName, cfg).EnsureTopics(ctx, cfg.Commands.Topic); err != nil {
			t.Errorf("the queue exists now: %v", err)
		}
	})

	t.Run("sns topic ARN", func(t *testing.T) {
		arn := "arn:aws:sns:" + awstest.Region + ":" + awstest.AccountID + ":reservation"
		cfg := loadEdited(t, "sns-sqs.yaml", "createIfMissing: true         # create missing topics", "createIfMissing: false #",
			"domainBus: reservation", "domainBus: "+arn)
		err := open(sns.BrokerName, cfg).EnsureTopics(ctx, cfg.Events.DomainBus)
		wantErr("missing topic", err, "(events.domainBus)", "does not exist: create it, or set brokers.sns.createIfMissing: true")
	})

	t.Run("eventbridge bus", func(t *testing.T) {
		cfg := loadEdited(t, "aws.yaml")
		b := open(eventbridge.BrokerName, cfg)
		err := b.EnsureTopics(ctx, cfg.Events.DomainBus, cfg.Events.AnalyticsBus)
		wantErr("missing bus", err, "events.analyticsBus", "aws events create-event-bus --name analytics")
		if err := b.EnsureTopics(ctx, cfg.Events.DomainBus); err != nil {
			t.Errorf("existing bus: %v", err)
		}
	})

	t.Run("no credentials", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		cfg := loadEdited(t, "aws.yaml")
		err := open(eventbridge.BrokerName, cfg).EnsureTopics(ctx, cfg.Events.DomainBus)
		wantErr("no credentials", err, "events.domainBus", "no AWS credentials: set AWS_ACCESS_KEY_ID")
	})
}
