package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	_ "github.com/emitd/emitd/adapters/all" // every broker
	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/eventbridge/ebtest"
	"github.com/emitd/emitd/adapters/kafka/kafkatest"
	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/cmd/emitd/internal/catalog/catalogtest"
)

func TestKafka(t *testing.T) {
	t.Parallel()
	addr := kafkatest.Start(t)[0]
	s := newSetup(t, "kafka.yaml", nil, "127.0.0.1:9092", addr)
	kafkaJourney(t, s)
}

// TestKafkaCloudEventsBinary: the Kafka setup with events.format
// cloudevents in binary mode (ce_ headers, the slot id still the key).
func TestKafkaCloudEventsBinary(t *testing.T) {
	t.Parallel()
	addr := kafkatest.Start(t)[0]
	s := newSetup(t, "kafka.yaml", nil, "127.0.0.1:9092", addr,
		"events:\n  broker: kafka\n", "events:\n  broker: kafka\n  format: cloudevents\n  cloudevents:\n    mode: binary\n")
	kafkaJourney(t, s)
}

func kafkaJourney(t *testing.T, s *setup) {
	v := s.validator()
	d := s.serve()
	results := s.tail("", "--from-beginning")
	dom := s.tail("reservation", "--from-beginning")
	ana := s.tail("analytics", "--from-beginning")
	journey(t, s, v, results, "reservation", "analytics", tailEvents(dom, v, "reservation"), tailEvents(ana, v, "analytics"))
	d.stop(t)
}

// awsEnv points every AWS client of the emitd processes at the local
// emulators through the SDK's standard environment only (the shipped files
// name no endpoint), with throwaway credentials and no shared config files.
func awsEnv(sqsSNS, eventBridge string) []string {
	endpoints := map[string]string{"AWS_ENDPOINT_URL_SQS": sqsSNS, "AWS_ENDPOINT_URL_SNS": sqsSNS}
	if eventBridge != "" {
		endpoints["AWS_ENDPOINT_URL_EVENTBRIDGE"] = eventBridge
	}
	return awstest.Env(endpoints)
}

// ebEvents reads what the EventBridge test server accepted for bus, in
// order: EventBridge itself cannot be read back.
func ebEvents(srv *ebtest.Server, v *catalogtest.Validator, bus string) events {
	seen := 0
	return func(t *testing.T, what string) entry {
		t.Helper()
		deadline := time.Now().Add(eventTimeout)
		for {
			var onBus []ebtest.Entry
			for _, e := range srv.Accepted() {
				if e.Bus == bus {
					onBus = append(onBus, e)
				}
			}
			if len(onBus) > seen {
				e := onBus[seen]
				seen++
				got := entry{EventBusName: e.Bus, Source: e.Source, DetailType: e.DetailType, Detail: e.Detail}
				b, _ := json.Marshal(got)
				v.EventLine(t, bus, string(b))
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: EventBridge accepted nothing more after %s (dropped for unknown buses: %d)", what, eventTimeout, len(srv.Dropped()))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestAWS: commands from SQS, events to EventBridge (configs/aws.yaml).
func TestAWS(t *testing.T) {
	t.Parallel()
	endpoint := awstest.StartFauxqs(t)
	eb := ebtest.New(ebtest.Options{Buses: []string{"reservation", "analytics"}})
	t.Cleanup(eb.Close)
	env := awsEnv(endpoint, eb.URL)

	// A bus that does not exist stops the daemon at start, by name: EventBridge
	// would take its events and drop them.
	bad := newSetup(t, "aws.yaml", env, "domainBus: reservation", "domainBus: reservations")
	_, stderr, code := bad.runCLI("serve", "--config", bad.cfg)
	if code != 1 || !strings.Contains(stderr, "events.domainBus") || !strings.Contains(stderr, `"reservations"`) {
		t.Errorf("serve with a missing bus: exit %d, stderr:\n%s\nwant exit 1 naming events.domainBus and the bus", code, stderr)
	}

	s := newSetup(t, "aws.yaml", env)
	v := s.validator()
	d := s.serve()
	_, stderr, code = s.runCLI("tail", "--config", s.cfg, "--bus", "reservation")
	if code != 1 || !strings.Contains(stderr, "EventBridge cannot be read back") {
		t.Errorf("tail on EventBridge: exit %d, stderr:\n%s\nwant exit 1 saying EventBridge cannot be read back", code, stderr)
	}
	// Without --consume, tail refuses an SQS queue: reading takes.
	_, stderr, code = s.runCLI("tail", "--config", s.cfg, "--results", "--timeout", "5s")
	if code != 1 || !strings.Contains(stderr, "--consume") {
		t.Errorf("tail --results on SQS without --consume: exit %d, stderr:\n%s", code, stderr)
	}
	results := s.tail("", "--consume") // the test is the only sender: it may take the outcomes
	journey(t, s, v, results, "reservation", "analytics", ebEvents(eb, v, "reservation"), ebEvents(eb, v, "analytics"))
	d.stop(t)
}

// TestSNSSQS: commands from SQS, events to SNS topics (configs/sns-sqs.yaml);
// tail reads each bus through an SQS queue it subscribes to the topic.
func TestSNSSQS(t *testing.T) {
	t.Parallel()
	endpoint := awstest.StartFauxqs(t)
	s := newSetup(t, "sns-sqs.yaml", awsEnv(endpoint, ""))
	v := s.validator()
	d := s.serve()
	results := s.tail("", "--consume")
	dom := s.tail("reservation")
	ana := s.tail("analytics")
	journey(t, s, v, results, "reservation", "analytics", tailEvents(dom, v, "reservation"), tailEvents(ana, v, "analytics"))
	d.stop(t)
}

// uniqueNames renames every topic and bus with a per-run suffix: the
// machine's NATS and RabbitMQ outlive the test and keep what earlier runs
// left.
func uniqueNames(run string) (replace []string, topics []string) {
	for _, kv := range [][2]string{
		{"topic: slot-commands ", "slot-commands"}, {"dlqTopic: slot-commands-dlq ", "slot-commands-dlq"},
		{"resultsTopic: slot-command-results ", "slot-command-results"},
		{"domainBus: reservation ", "reservation"}, {"analyticsBus: analytics ", "analytics"},
	} {
		name := kv[1] + "-" + run
		replace = append(replace, kv[0], strings.Replace(kv[0], ": "+kv[1], ": "+name, 1))
		topics = append(topics, name)
	}
	return replace, topics
}

func runID() string { return fmt.Sprintf("e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9) }

// TestNATS: everything on the machine's NATS JetStream (configs/nats.yaml).
func TestNATS(t *testing.T) {
	t.Parallel()
	needServer(t, "NATS", "127.0.0.1:4222")
	run := runID()
	replace, topics := uniqueNames(run)
	t.Cleanup(func() {
		nc, err := nats.Connect("nats://127.0.0.1:4222")
		if err != nil {
			return
		}
		defer nc.Close()
		js, err := nc.JetStream()
		if err != nil {
			return
		}
		for _, topic := range topics {
			_ = js.DeleteStream(natsjs.Config{}.StreamName(topic))
		}
	})
	s := newSetup(t, "nats.yaml", nil, replace...)
	v := s.validator()
	d := s.serve()
	results := s.tail("", "--from-beginning")
	dom := s.tail("reservation-"+run, "--from-beginning")
	ana := s.tail("analytics-"+run, "--from-beginning")
	journey(t, s, v, results, "reservation-"+run, "analytics-"+run, tailEvents(dom, v, "reservation-"+run), tailEvents(ana, v, "analytics-"+run))
	d.stop(t)
}

// TestAMQP: everything on the machine's RabbitMQ (configs/amqp.yaml).
func TestAMQP(t *testing.T) {
	t.Parallel()
	needServer(t, "RabbitMQ", "127.0.0.1:5672")
	run := runID()
	replace, topics := uniqueNames(run)
	t.Cleanup(func() { deleteAMQPQueues(topics) })
	s := newSetup(t, "amqp.yaml", nil, replace...)
	v := s.validator()
	d := s.serve()
	results := s.tail("")
	dom := s.tail("reservation-" + run)
	ana := s.tail("analytics-" + run)
	journey(t, s, v, results, "reservation-"+run, "analytics-"+run, tailEvents(dom, v, "reservation-"+run), tailEvents(ana, v, "analytics-"+run))
	d.stop(t)
}
