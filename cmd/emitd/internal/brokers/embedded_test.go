package brokers_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/cmd/emitd/internal/brokers"
	"github.com/emitd/emitd/configs"
)

// brokers.embedded.host: ::1 is a valid setting, so the daemon must work
// with it: the server listens on [::1], and clients reach it through the URL
// Open builds (nats://[::1]:PORT, not the unparsable nats://::1:PORT).
func TestEmbeddedOnIPv6Loopback(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("this machine has no IPv6 loopback (listen on [::1]: %v), so the embedded broker cannot listen on ::1 here", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()

	doc := strings.Replace(string(configs.EmbeddedYAML()), "host: 127.0.0.1", "host: ::1", 1)
	doc = strings.Replace(doc, embeddedPort, fmt.Sprintf("port: %d", port), 1)
	doc = strings.Replace(doc, "dataDir: ./data", "dataDir: "+t.TempDir(), 1)
	cfg, err := configs.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if natsjs.EmbeddedSectionOf(cfg).Host != "::1" {
		t.Fatalf("host %q: the fixture did not apply", natsjs.EmbeddedSectionOf(cfg).Host)
	}
	emb, err := brokers.StartEmbedded(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	if want := fmt.Sprintf("nats://[::1]:%d", port); emb.URL() != want {
		t.Errorf("URL %s, want %s", emb.URL(), want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := brokers.Open(ctx, natsjs.EmbeddedName, cfg, nil)
	if err != nil {
		t.Fatalf("open the embedded broker on ::1: %v", err)
	}
	defer b.Close()
	topic := cfg.Commands.Topic
	if err := b.EnsureTopics(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish(topic, message.NewMessage("m-1", []byte(`{"over":"ipv6"}`))); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscriber(broker.SubscribeOptions{FromBeginning: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		m.Ack()
		if m.UUID != "m-1" || string(m.Payload) != `{"over":"ipv6"}` {
			t.Fatalf("read back %s %s", m.UUID, m.Payload)
		}
	case <-ctx.Done():
		t.Fatal("the message published over ::1 did not come back")
	}
}

// embeddedPort is the port line of the shipped embedded.yaml.
var embeddedPort = fmt.Sprintf("port: %d", natsjs.DefaultEmbeddedPort)
