package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/cmd/emitd/internal/brokers"
	"github.com/emitd/emitd/cmd/emitd/internal/daemon"
	"github.com/emitd/emitd/cmd/emitd/internal/testbin"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// wait bounds every wait for something the daemon should do; generous on
// purpose (the tests prove outcomes, not speed, and run under -race).
const wait = 60 * time.Second

var freePort = testbin.FreePort

// testConfig is the built-in embedded default, in a temporary data directory
// on a free port.
func testConfig(t testing.TB) *configs.Config {
	t.Helper()
	cfg, err := configs.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	natsjs.EmbeddedSectionOf(cfg).Port = freePort(t)
	cfg.Router.Retry.InitialInterval = 10 * time.Millisecond
	cfg.Router.Retry.MaxInterval = 50 * time.Millisecond
	cfg.Relay.PollInterval = 50 * time.Millisecond
	// Tests that want the listener or the schedule turn them on; the
	// shipped ones would take a fixed port and fire commands of their own.
	off, no := "", false
	cfg.HTTP.Listen, cfg.Schedule.Enabled = &off, &no
	return cfg
}

type running struct {
	d    *daemon.Daemon
	cfg  *configs.Config
	stop func() error
	// commands, when set, checks every command send puts on the queue
	// against the catalog.
	commands func(t testing.TB, b []byte)
}

// start runs a daemon in-process until the test ends (or stop is called).
func start(t testing.TB, cfg *configs.Config, opts ...daemon.Option) *running {
	t.Helper()
	d, err := daemon.New(context.Background(), cfg, watermill.NopLogger{}, opts...)
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-d.Running():
	case err := <-done:
		t.Fatalf("daemon stopped at start: %v", err)
	case <-time.After(wait):
		t.Fatal("daemon not running")
	}
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("daemon stop: %v", err)
		}
	})
	return &running{d: d, cfg: cfg, stop: stop}
}

// broker opens the broker that carries topic (commands side or events side).
func (r *running) broker(t testing.TB, topic string) broker.Broker {
	t.Helper()
	kind := r.cfg.Commands.Broker
	if topic == r.cfg.Events.DomainBus || topic == r.cfg.Events.AnalyticsBus {
		kind = r.cfg.Events.Broker
	}
	b, err := brokers.Open(context.Background(), kind, r.cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// send publishes commands the way `emitd send` does and returns their ids.
func (r *running) send(t testing.TB, cmds ...string) []string {
	t.Helper()
	var msgs []*message.Message
	var ids []string
	for _, c := range cmds {
		b, cmd, err := domain.EnsureIDs([]byte(c))
		if err != nil {
			t.Fatalf("command %s: %v", c, err)
		}
		if r.commands != nil {
			r.commands(t, b)
		}
		msg := message.NewMessage(cmd.ID, b)
		msg.Metadata.Set(publisher.MetaCorrelationID, cmd.CorrelationID)
		msgs, ids = append(msgs, msg), append(ids, cmd.ID)
	}
	r.sendRaw(t, msgs...)
	return ids
}

func (r *running) sendRaw(t testing.TB, msgs ...*message.Message) {
	t.Helper()
	if err := r.broker(t, r.cfg.Commands.Topic).Publisher().Publish(r.cfg.Commands.Topic, msgs...); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// reader collects everything published on one topic from its beginning.
type reader struct {
	mu   sync.Mutex
	msgs []*message.Message
	cond chan struct{}
}

// read reads topic from its beginning without a consumer group. (On SQS
// that takes the messages: fine for results, not for the commands queue.)
func (r *running) read(t testing.TB, topic string) *reader {
	t.Helper()
	sub, err := r.broker(t, topic).Subscriber(broker.SubscribeOptions{FromBeginning: true, Consume: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rd := &reader{cond: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range ch {
			rd.mu.Lock()
			rd.msgs = append(rd.msgs, msg)
			rd.mu.Unlock()
			msg.Ack()
			select {
			case rd.cond <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { cancel(); _ = sub.Close(); <-done })
	return rd
}

// waitFor waits until ok holds for what was read so far.
func (rd *reader) waitFor(t testing.TB, what string, ok func([]*message.Message) bool) []*message.Message {
	t.Helper()
	deadline := time.After(wait)
	for {
		rd.mu.Lock()
		snapshot := append([]*message.Message(nil), rd.msgs...)
		rd.mu.Unlock()
		if ok(snapshot) {
			return snapshot
		}
		select {
		case <-rd.cond:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; have %d messages", what, len(snapshot))
		}
	}
}

func (rd *reader) waitN(t testing.TB, what string, n int) []*message.Message {
	t.Helper()
	return rd.waitFor(t, fmt.Sprintf("%d %s", n, what), func(m []*message.Message) bool { return len(m) >= n })
}

// all returns what was read so far.
func (rd *reader) all() []*message.Message {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return append([]*message.Message(nil), rd.msgs...)
}

func outcomes(t testing.TB, msgs []*message.Message) map[string]domain.Outcome {
	t.Helper()
	out := map[string]domain.Outcome{}
	for _, m := range msgs {
		var o domain.Outcome
		if err := json.Unmarshal(m.Payload, &o); err != nil {
			t.Fatalf("outcome %s: %v", m.Payload, err)
		}
		out[o.CommandID] = o
	}
	return out
}

// detail is the part of an envelope's Detail the tests look at.
type detail struct {
	Metadata struct {
		ID            string `json:"id"`
		CorrelationID string `json:"correlationId"`
	} `json:"metadata"`
	Data map[string]any `json:"data"`
}

func envelopes(t testing.TB, msgs []*message.Message) ([]domain.Envelope, []detail) {
	t.Helper()
	return envelopesOn(t, "", msgs)
}

// envelopesOn reads the envelopes of messages from bus, in any format.
func envelopesOn(t testing.TB, bus string, msgs []*message.Message) ([]domain.Envelope, []detail) {
	t.Helper()
	var envs []domain.Envelope
	var details []detail
	for _, m := range msgs {
		env, _, err := publisher.DecodeEvent(bus, m)
		if err != nil {
			t.Fatal(err)
		}
		var d detail
		if err := json.Unmarshal([]byte(env.Detail), &d); err != nil {
			t.Fatalf("detail of %s: %v", env.ID, err)
		}
		envs, details = append(envs, env), append(details, d)
	}
	return envs, details
}
