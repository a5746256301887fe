package natsjs_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/emitd/emitd/adapters/contract"
	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

const machineNATS = "nats://127.0.0.1:4222"

// testConfig is the adapter configuration the contract runs with: streams
// under their own prefix, "from beginning", and an AckWait short enough
// that a message left unacknowledged by a closed subscriber returns within
// the suite's wait (it is still far above any handling time in the suite).
func testConfig(url string) natsjs.Config {
	return natsjs.Config{
		URL:          url,
		StreamPrefix: "EMITDTEST_",
		DeliverAll:   true,
		AckWait:      5 * time.Second,
		MaxAge:       time.Hour,
	}
}

func startEmbedded(t testing.TB, dir string) (stop func(), url string) {
	t.Helper()
	srv, url, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{Dir: dir, Port: -1})
	if err != nil {
		t.Fatalf("[natsjs-embedded] start: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		})
	}
	t.Cleanup(stop)
	return stop, url
}

// machineBroker returns the machine's NATS URL, or skips (fails under CI)
// when it is not reachable or has no JetStream.
func machineBroker(t *testing.T) string {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf("[natsjs-machine] machine NATS at %s unusable: ", machineNATS) + fmt.Sprintf(format, args...)
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set: the broker is required)")
		}
		t.Skip(msg + " (set CI to make this a failure)")
	}
	conn, err := net.DialTimeout("tcp", "127.0.0.1:4222", 2*time.Second)
	if err != nil {
		unavailable("%v", err)
	}
	_ = conn.Close()
	nc, err := nats.Connect(machineNATS, nats.Timeout(5*time.Second))
	if err != nil {
		unavailable("%v", err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err == nil {
		_, err = js.AccountInfo()
	}
	if err != nil {
		unavailable("JetStream: %v", err)
	}
	return machineNATS
}

func factory(name string, cfg natsjs.Config) contract.Factory {
	return contract.Factory{
		Name: name,
		NewPublisher: func(t *testing.T) message.Publisher {
			p, err := natsjs.NewPublisher(cfg)
			if err != nil {
				t.Fatalf("[%s] NewPublisher: %v", name, err)
			}
			return p
		},
		NewSubscriber: func(t *testing.T, group string) message.Subscriber {
			s, err := natsjs.NewSubscriber(cfg, group)
			if err != nil {
				t.Fatalf("[%s] NewSubscriber(%q): %v", name, group, err)
			}
			return s
		},
		NewTopic: func(t *testing.T) string {
			topic := "emitd-test." + uuid.NewString()[:12]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := natsjs.EnsureStreams(ctx, cfg, []string{topic}); err != nil {
				t.Fatalf("[%s] EnsureStreams: %v", name, err)
			}
			t.Cleanup(func() { deleteStream(t, cfg, topic) })
			return topic
		},
	}
}

func deleteStream(t *testing.T, cfg natsjs.Config, topic string) {
	nc, err := nats.Connect(cfg.URL)
	if err != nil {
		return // embedded server already gone: nothing to clean
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return
	}
	if err := js.DeleteStream(cfg.StreamName(topic)); err != nil && err != nats.ErrStreamNotFound {
		t.Logf("delete stream %s: %v", cfg.StreamName(topic), err)
	}
}

func features(name string, cfg natsjs.Config) contract.Features {
	return contract.Features{
		PerKeyOrder:    true,
		GlobalOrder:    true, // one stream per topic, delivered in stream order
		ConsumerGroups: true,
		Persistent:     true,
		Redelivery:     true,
		ExactlyOnce:    false,
		InFlight:       20,
		NativeCheck: func(t *testing.T, topic string, sent []domain.Envelope) {
			nativeCheck(t, name, cfg, topic, sent)
		},
		CloudEvents: &contract.CloudEventsBinding{
			// the NATS binding's, as the spec writes it
			Prefix: "ce-", Read: func(t *testing.T, topic string, n int) []contract.Native {
				return readNative(t, cfg, topic, n)
			}},
	}
}

// readNative reads a topic's stream with nats.go, no Watermill.
func readNative(t *testing.T, cfg natsjs.Config, topic string, n int) []contract.Native {
	t.Helper()
	nc, err := nats.Connect(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	stream := cfg.StreamName(topic)
	info, err := js.StreamInfo(stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []contract.Native
	for i := range n {
		raw, err := js.GetMsg(stream, info.State.FirstSeq+uint64(i))
		if err != nil {
			t.Fatalf("get message %d of %s: %v", i, stream, err)
		}
		h := map[string]string{}
		for k := range raw.Header {
			h[k] = raw.Header.Get(k)
		}
		out = append(out, contract.Native{Headers: h, ContentType: raw.Header.Get("content-type"), Body: raw.Data})
	}
	return out
}

// nativeCheck reads the stream back with nats.go, no Watermill: one message
// per envelope in publish order, subject = topic, body = entry JSON, the
// metadata as headers, Nats-Msg-Id = event id.
func nativeCheck(t *testing.T, name string, cfg natsjs.Config, topic string, sent []domain.Envelope) {
	t.Helper()
	nc, err := nats.Connect(cfg.URL)
	if err != nil {
		t.Fatalf("[%s] native connect: %v", name, err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatalf("[%s] native jetstream: %v", name, err)
	}
	stream := cfg.StreamName(topic)
	info, err := js.StreamInfo(stream)
	if err != nil {
		t.Fatalf("[%s] stream %s: %v", name, stream, err)
	}
	if info.State.Msgs != uint64(len(sent)) {
		t.Errorf("[%s] stream %s holds %d messages, want %d", name, stream, info.State.Msgs, len(sent))
	}
	for i, env := range sent {
		raw, err := js.GetMsg(stream, info.State.FirstSeq+uint64(i))
		if err != nil {
			t.Fatalf("[%s] get message %d: %v", name, i, err)
		}
		if raw.Subject != topic {
			t.Errorf("[%s] message %d: subject %q, want %q", name, i, raw.Subject, topic)
		}
		if want := contract.EntryJSON(t, env); string(raw.Data) != string(want) {
			t.Errorf("[%s] message %d: body\n got %s\nwant %s", name, i, raw.Data, want)
		}
		for k, v := range contract.HeaderKeys(env) {
			if got := raw.Header.Get(k); got != v {
				t.Errorf("[%s] message %d: header %q = %q, want %q", name, i, k, got, v)
			}
		}
		if env.CorrelationID == "" {
			if _, ok := raw.Header[publisher.MetaCorrelationID]; ok {
				t.Errorf("[%s] message %d: header %q present for an envelope without correlation id", name, i, publisher.MetaCorrelationID)
			}
		}
		if got := raw.Header.Get(nats.MsgIdHdr); got != env.ID {
			t.Errorf("[%s] message %d: %s = %q, want the event id %q", name, i, nats.MsgIdHdr, got, env.ID)
		}
	}
}

func TestContractEmbedded(t *testing.T) {
	_, url := startEmbedded(t, t.TempDir())
	cfg := testConfig(url)
	contract.Run(t, factory("natsjs-embedded", cfg), features("natsjs-embedded", cfg))
}

func TestContractMachine(t *testing.T) {
	cfg := testConfig(machineBroker(t))
	contract.Run(t, factory("natsjs-machine", cfg), features("natsjs-machine", cfg))
}

// TestEmbeddedRestartKeepsMessages: file storage survives a shutdown; a
// group created after the restart reads everything from the beginning, and
// a re-publish of the same event (same Nats-Msg-Id) inside the duplicate
// window is dropped by the broker.
func TestEmbeddedRestartKeepsMessages(t *testing.T) {
	const name = "natsjs-embedded-restart"
	dir := t.TempDir()
	stop, url := startEmbedded(t, dir)
	topic := "emitd-events"
	cfg := testConfig(url)
	cfg.Topics = []string{topic}

	pub, err := natsjs.NewPublisher(cfg)
	if err != nil {
		t.Fatalf("[%s] NewPublisher: %v", name, err)
	}
	envs := contract.Envelopes(topic, 25, contract.Slots(3))
	for _, e := range envs {
		m, err := publisher.ToMessage(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(topic, m); err != nil {
			t.Fatalf("[%s] publish: %v", name, err)
		}
	}
	// The relay re-sends the first envelope (say, it crashed before marking
	// it sent): JetStream drops it by Nats-Msg-Id.
	again, _ := publisher.ToMessage(envs[0])
	if err := pub.Publish(topic, again); err != nil {
		t.Fatalf("[%s] re-publish: %v", name, err)
	}
	if err := pub.Close(); err != nil {
		t.Fatalf("[%s] close publisher: %v", name, err)
	}
	stop()

	// Same directory, new server (new random port).
	_, url2 := startEmbedded(t, dir)
	cfg.URL = url2
	nc, err := nats.Connect(url2)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	info, err := js.StreamInfo(cfg.StreamName(topic))
	if err != nil {
		t.Fatalf("[%s] stream after restart: %v", name, err)
	}
	if info.State.Msgs != uint64(len(envs)) {
		t.Fatalf("[%s] after restart the stream holds %d messages, want %d (the duplicate dropped)", name, info.State.Msgs, len(envs))
	}

	sub, err := natsjs.NewSubscriber(cfg, "after-restart")
	if err != nil {
		t.Fatalf("[%s] NewSubscriber: %v", name, err)
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("[%s] subscribe: %v", name, err)
	}
	for i, want := range envs {
		select {
		case m := <-ch:
			got, err := publisher.FromMessage(m)
			if err != nil {
				t.Fatalf("[%s] message %d: %v", name, i, err)
			}
			want.Event = ""
			if got != want {
				t.Fatalf("[%s] message %d after restart:\n got %+v\nwant %+v", name, i, got, want)
			}
			m.Ack()
		case <-time.After(contract.WaitTimeout):
			t.Fatalf("[%s] message %d not received after restart", name, i)
		}
	}
}

// TestPublishWithoutStreamFails: AutoProvision is off, so a topic without a
// stream is an error at publish, not a silent drop.
func TestPublishWithoutStreamFails(t *testing.T) {
	_, url := startEmbedded(t, t.TempDir())
	p, err := natsjs.NewPublisher(testConfig(url))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m, _ := publisher.ToMessage(contract.Envelopes("nowhere", 1, contract.Slots(1))[0])
	if err := p.Publish("no-stream-here", m); err == nil {
		t.Fatal("[natsjs-embedded] publish to a topic without a stream succeeded; want an error")
	} else {
		t.Logf("error as expected: %v", err)
	}
}

func TestStartEmbeddedRefusesNonLoopback(t *testing.T) {
	if _, _, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{Dir: t.TempDir(), Host: "0.0.0.0", Port: -1}); err == nil {
		t.Fatal("StartEmbedded on 0.0.0.0 succeeded; want refusal")
	}
}

// BenchmarkPublish measures Publisher.Publish into the embedded server
// (file store), one message per call, from 1 and 16 goroutines.
func BenchmarkPublish(b *testing.B) {
	for _, goroutines := range []int{1, 16} {
		b.Run("goroutines="+strconv.Itoa(goroutines), func(b *testing.B) {
			_, url := startEmbedded(b, b.TempDir())
			topic := "emitd-bench"
			cfg := testConfig(url)
			cfg.Topics = []string{topic}
			p, err := natsjs.NewPublisher(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			tmpl, _ := publisher.ToMessage(contract.Envelopes(topic, 1, contract.Slots(1))[0])

			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, goroutines)
			b.ResetTimer()
			start := time.Now()
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						m := message.NewMessage(uuid.NewString(), tmpl.Payload)
						for k, v := range tmpl.Metadata {
							m.Metadata.Set(k, v)
						}
						if err := p.Publish(topic, m); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			select {
			case err := <-errs:
				b.Fatal(err)
			default:
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}

// A message reported in progress is not redelivered while it is worked on,
// however long past the ack wait; once that stops, it is.
func TestInProgressHoldsRedeliveryOff(t *testing.T) {
	stop, url := startEmbedded(t, t.TempDir())
	defer stop()
	cfg := testConfig(url)
	cfg.AckWait = time.Second
	topic := "inprogress"
	if err := natsjs.EnsureStreams(context.Background(), cfg, []string{topic}); err != nil {
		t.Fatal(err)
	}
	pub, err := natsjs.NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := natsjs.NewSubscriber(cfg, "held")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	sent := message.NewMessage(uuid.NewString(), []byte(`{}`))
	if err := pub.Publish(topic, sent); err != nil {
		t.Fatal(err)
	}
	got := <-ch
	touch := publisher.InProgress(got)
	if touch == nil {
		t.Fatal("a group subscriber's message carries no in-progress signal")
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		touch()
		select {
		case again := <-ch:
			t.Fatalf("redelivered %s while in progress", again.UUID)
		case <-time.After(300 * time.Millisecond):
		}
	}
	select { // no longer touched: the ack wait runs out, it comes back
	case again := <-ch:
		if again.UUID != sent.UUID {
			t.Fatalf("got %s", again.UUID)
		}
		again.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("not redelivered once no longer in progress")
	}
	got.Ack()
}
