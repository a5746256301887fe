package brokers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/configs"
)

// natsBroker serves both the embedded broker and an external NATS server:
// they differ only in who runs the server.
type natsBroker struct {
	name string
	cfg  natsjs.Config
	pub  *natsjs.Publisher
}

func openNATS(name, url string, logger watermill.LoggerAdapter) (Broker, error) {
	cfg := natsjs.Config{URL: url, Logger: logger, NatsOptions: []nats.Option{nats.Name("emitd")}}
	pub, err := natsjs.NewPublisher(cfg)
	if err != nil {
		if name == configs.BrokerEmbedded && errors.Is(err, nats.ErrNoServers) {
			return nil, fmt.Errorf("cannot reach the embedded broker at %s: is `emitd serve` running with this configuration? (%w)", url, err)
		}
		return nil, err
	}
	return &natsBroker{name: name, cfg: cfg, pub: pub}, nil
}

func (b *natsBroker) Name() string                 { return b.name }
func (b *natsBroker) Publisher() message.Publisher { return b.pub }
func (b *natsBroker) Close() error                 { return b.pub.Close() }

func (b *natsBroker) Ping(ctx context.Context, topic string) error { return b.pub.Ping(ctx, topic) }

func (b *natsBroker) QueueDepth(ctx context.Context, topic, group string) (int64, error) {
	return b.pub.QueueDepth(ctx, topic, group)
}

func (b *natsBroker) EnsureTopics(ctx context.Context, topics ...string) error {
	return b.pub.EnsureStreams(ctx, topics)
}

func (b *natsBroker) Subscriber(opts SubscribeOptions) (message.Subscriber, error) {
	cfg := b.cfg
	cfg.DeliverAll = opts.FromBeginning
	cfg.MaxInFlight = opts.MaxInFlight
	if opts.Group != "" {
		return natsjs.NewSubscriber(cfg, opts.Group)
	}
	sub, err := natsjs.NewSubscriber(cfg, "")
	return reader(sub, err, b.name, cfg.Logger)
}

// Embedded is the in-process NATS JetStream server of the embedded default.
type Embedded struct {
	srv *server.Server
	url string
	dir string
}

// StartEmbedded starts the embedded broker on brokers.embedded's loopback
// address, with its JetStream store under dataDir/nats.
func StartEmbedded(cfg *configs.Config, logger watermill.LoggerAdapter) (*Embedded, error) {
	e := cfg.Brokers.Embedded
	dir := filepath.Join(cfg.DataDir, "nats")
	srv, url, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{Dir: dir, Host: e.Host, Port: e.Port, Logger: logger})
	if err != nil {
		if strings.Contains(err.Error(), "not ready") {
			err = fmt.Errorf("%w: is another emitd or program listening on %s? set brokers.embedded.port to move it",
				err, net.JoinHostPort(e.Host, strconv.Itoa(e.Port)))
		}
		return nil, err
	}
	return &Embedded{srv: srv, url: url, dir: dir}, nil
}

// URL is the client URL (nats://host:port).
func (e *Embedded) URL() string { return e.url }

// StoreDir is where JetStream keeps its files.
func (e *Embedded) StoreDir() string { return e.dir }

// Shutdown stops the server and waits until it has.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
