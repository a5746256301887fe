package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/nats-io/nats.go"
	"gopkg.in/yaml.v3"

	"github.com/emitd/emitd/adapters/amqp"
	"github.com/emitd/emitd/adapters/amqp/amqptest"
	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/kafka"
	"github.com/emitd/emitd/adapters/kafka/kafkatest"
	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/adapters/postgres/pgtest"
	"github.com/emitd/emitd/adapters/sns"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/cmd/emitd/internal/brokers"
	"github.com/emitd/emitd/cmd/emitd/internal/testbin"
	"github.com/emitd/emitd/configs"
)

// The machine's shared servers (TESTING-BROKERS.md).
const (
	machineNATS     = "nats://127.0.0.1:4222"
	machineNATSAddr = "127.0.0.1:4222"
	machineAMQP     = "amqp://guest:guest@127.0.0.1:5672/"
	machineAMQPAddr = "127.0.0.1:5672"
)

// target is one broker setup: the shipped configuration it starts from, and
// what a run needs around it. The configuration keeps everything as shipped
// except what the machine forces (data directory, addresses, per-run names)
// and, for SQS, the events broker (see sqsTarget).
type target struct {
	name string // sub-benchmark name
	file string // in configs/
	// start readies the broker for one run, or skips, and says where it is.
	start func(b *testing.B) (at string)
	// example is an address of the kind start returns, for TestDerivedConfigs.
	example string
	// adapt points the configuration at the broker; it must not need the
	// broker itself (TestDerivedConfigs calls it with a made-up address).
	adapt func(cfg *configs.Config, at string)
	// env is the environment that emitd, and this process, need for it.
	env func(at string) []string
	// cleanup removes what a run left on a shared server.
	cleanup func(cfg *configs.Config)
	// raw starts Watermill's own pub/sub for the broker (raw_test.go);
	// nil for a target that varies something other than the broker.
	raw func(b *testing.B, run string) rawPubSub
	// instances is how many `emitd serve` processes share the run (0: one).
	instances int
	// prepare readies what the configuration leaves to the environment
	// (a fresh PostgreSQL schema) and returns that environment; exampleEnv
	// is an environment of the same kind, for TestDerivedConfigs.
	prepare    func(b *testing.B) []string
	exampleEnv []string
}

func targets() []target {
	return []target{embeddedTarget, natsTarget, postgresTarget(1), postgresTarget(3), kafkaTarget, sqsTarget, amqpTarget}
}

// postgresTarget: configs/postgres.yaml, on the machine's NATS like the
// nats target (whose emitd row is the SQLite figure to compare with), the
// state in a fresh schema of the machine's PostgreSQL, and n instances
// sharing it. There is no raw row: the broker is the nats target's.
func postgresTarget(n int) target {
	t := natsTarget
	t.name, t.file, t.raw, t.instances = fmt.Sprintf("postgres-%d", n), "postgres.yaml", nil, n
	t.prepare = func(b *testing.B) []string {
		return []string{configs.StoreURLEnv + "=" + pgtest.Schema(b)}
	}
	t.exampleEnv = []string{configs.StoreURLEnv + "=postgres://127.0.0.1:5432/test?search_path=emitd_bench"}
	return t
}

var embeddedTarget = target{
	name: "embedded", file: "embedded.yaml", example: "14233",
	start: func(b *testing.B) string { return strconv.Itoa(testbin.FreePort(b)) },
	adapt: func(cfg *configs.Config, port string) {
		// The daemon runs the broker itself: only the port moves, off the
		// shipped 4233, so that a run never meets another emitd.
		natsjs.EmbeddedSectionOf(cfg).Port, _ = strconv.Atoi(port)
	},
	raw: rawEmbedded,
}

var natsTarget = target{
	name: "nats", file: "nats.yaml", example: machineNATS,
	start: func(b *testing.B) string {
		needServer(b, "NATS", machineNATSAddr)
		return machineNATS
	},
	adapt:   func(cfg *configs.Config, url string) { natsjs.NATSSectionOf(cfg).URL = url },
	cleanup: deleteNATSStreams,
	raw:     rawNATS,
}

var kafkaTarget = target{
	name: "kafka", file: "kafka.yaml", example: "127.0.0.1:19092",
	// kfake in this process, as the end-to-end tests run it: a fresh
	// cluster per run, since it keeps every record in memory.
	start: func(b *testing.B) string { return kafkatest.StartCluster(b).ListenAddrs()[0] },
	adapt: func(cfg *configs.Config, addr string) { kafka.SectionOf(cfg).Brokers = []string{addr} },
	raw:   rawKafka,
}

// sqsTarget: commands, outcomes and events all on SQS queues. No shipped
// file has SQS events (aws.yaml sends them to EventBridge, sns-sqs.yaml to
// SNS), but events.broker may be sqs; starting from sns-sqs.yaml, only the
// events broker changes, and its SNS section goes. Queues as buses keep the
// comparison with raw Watermill's SQS publisher and subscriber like for like.
var sqsTarget = target{
	name: "sqs", file: "sns-sqs.yaml", example: "http://127.0.0.1:14566",
	start: func(b *testing.B) string { return awstest.StartFauxqs(b) },
	adapt: func(cfg *configs.Config, _ string) {
		cfg.Events.Broker = sqs.BrokerName
		delete(cfg.Brokers, sns.BrokerName)
	},
	// The shipped file names no endpoint: the SDK's standard environment
	// points it at fauxqs, as it would at a real region.
	env: func(endpoint string) []string {
		return awstest.Env(map[string]string{"AWS_ENDPOINT_URL_SQS": endpoint})
	},
	raw: rawSQS,
}

var amqpTarget = target{
	name: "amqp", file: "amqp.yaml", example: machineAMQP,
	start: func(b *testing.B) string {
		needServer(b, "RabbitMQ", machineAMQPAddr)
		return machineAMQP
	},
	adapt:   func(cfg *configs.Config, url string) { amqp.SectionOf(cfg).URL = url },
	cleanup: deleteAMQPQueues,
	raw:     rawAMQP,
}

// configsDir is the shipped configs/ folder, from this package's directory.
const configsDir = "../../../../configs"

// deriveConfig loads configs/<file> and adapts it for one run: its own data
// directory and names, the target's adaptations. It returns the result
// loaded back from the YAML that emitd will read, so what the benchmark
// uses is exactly what the daemon uses.
func deriveConfig(t *target, run, dataDir, at string) (*configs.Config, []byte, error) {
	cfg, err := configs.Load(filepath.Join(configsDir, t.file))
	if err != nil {
		return nil, nil, err
	}
	cfg.DataDir = dataDir
	for _, name := range []*string{&cfg.Commands.Topic, &cfg.Commands.DLQTopic, &cfg.Commands.ResultsTopic,
		&cfg.Events.DomainBus, &cfg.Events.AnalyticsBus} {
		*name += "-" + run
	}
	// No operations listener (runs share the machine's ports) and no
	// schedule (a firing would add commands to what is measured).
	off, no := "", false
	cfg.HTTP.Listen, cfg.Schedule.Enabled = &off, &no
	t.adapt(cfg, at)
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	back, err := configs.Parse(out)
	if err != nil {
		return nil, nil, fmt.Errorf("derived configuration does not load: %w\n%s", err, out)
	}
	return back, out, nil
}

// emitdRun is one daemon (or several) with the clients of a run around it.
type emitdRun struct {
	cfg      *configs.Config
	daemon   *daemon
	more     []*daemon     // the other instances of the run
	commands broker.Broker // commands.broker: commands out, outcomes in
	events   broker.Broker // events.broker: the two buses
}

// startEmitd starts the broker, derives the configuration and starts
// `emitd serve` on it.
func startEmitd(b *testing.B, t *target, run string) *emitdRun {
	b.Helper()
	at := t.start(b)
	dir := b.TempDir()
	var env []string
	if t.prepare != nil {
		env = t.prepare(b)
	}
	if t.env != nil {
		env = append(env, t.env(at)...)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		b.Setenv(k, v)
	}
	cfg, yml, err := deriveConfig(t, run, filepath.Join(dir, "data"), at)
	if err != nil {
		b.Fatalf("configs/%s: %v", t.file, err)
	}
	path := filepath.Join(dir, "emitd.yaml")
	if err := os.WriteFile(path, yml, 0o644); err != nil {
		b.Fatal(err)
	}
	if t.cleanup != nil {
		b.Cleanup(func() { t.cleanup(cfg) })
	}
	r := &emitdRun{cfg: cfg, daemon: startDaemon(b, path, env)}
	for range t.instances - 1 {
		r.more = append(r.more, startDaemon(b, path, env))
	}
	r.commands = openBroker(b, cfg.Commands.Broker, cfg)
	r.events = openBroker(b, cfg.Events.Broker, cfg)
	return r
}

// log is what the run's daemons logged last, for a failure message.
func (r *emitdRun) log() string {
	out := r.daemon.log.String()
	for i, d := range r.more {
		out += fmt.Sprintf("\n--- instance %d:\n%s", i+2, d.log)
	}
	return out
}

func openBroker(b *testing.B, kind string, cfg *configs.Config) broker.Broker {
	b.Helper()
	br, err := brokers.Open(context.Background(), kind, cfg, watermill.NopLogger{})
	if err != nil {
		b.Fatalf("open %s: %v", kind, err)
	}
	b.Cleanup(func() { _ = br.Close() })
	return br
}

// readers subscribes to the results topic and both buses, as `emitd tail`
// does (from the beginning where the broker keeps messages; on SQS the
// readers take what they read, which is what a sender reading its own
// outcome queue does).
func (r *emitdRun) readers(b *testing.B, index map[string]int) (outcomes, domain, analytics *observer) {
	b.Helper()
	mk := func(name string, br broker.Broker, topic string, key keyFunc) *observer {
		s, err := br.Subscriber(broker.SubscribeOptions{FromBeginning: true, Consume: true})
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		return observe(b, name, s, topic, index, key)
	}
	outcomes = mk("outcomes", r.commands, r.cfg.Commands.ResultsTopic, outcomeKey)
	domain = mk("domain bus", r.events, r.cfg.Events.DomainBus, eventKey)
	analytics = mk("analytics bus", r.events, r.cfg.Events.AnalyticsBus, eventKey)
	return outcomes, domain, analytics
}

// ---- cleanup of shared servers ------------------------------------------------

// deleteNATSStreams deletes the streams that capture the run's topics
// (found by subject, so this does not depend on how emitd names them).
func deleteNATSStreams(cfg *configs.Config) {
	nc, err := nats.Connect(natsjs.NATSSectionOf(cfg).URL)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return
	}
	for _, topic := range []string{cfg.Commands.Topic, cfg.Commands.DLQTopic, cfg.Commands.ResultsTopic,
		cfg.Events.DomainBus, cfg.Events.AnalyticsBus} {
		if name, err := js.StreamNameBySubject(topic); err == nil {
			_ = js.DeleteStream(name)
		}
	}
}

// deleteAMQPQueues deletes the durable queues emitd declares, named
// <topic>_<group> as configs/amqp.yaml documents: the commands queue and
// the poison queue's (group emitd-dlq). The readers' queues go by themselves.
func deleteAMQPQueues(cfg *configs.Config) {
	amqptest.Delete(amqp.SectionOf(cfg).URL, []string{cfg.Commands.Topic + "_" + cfg.Commands.Group, cfg.Commands.DLQTopic + "_" + broker.DeadLetterGroup})
}
