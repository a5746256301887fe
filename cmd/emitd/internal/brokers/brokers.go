// Package brokers is the daemon's side of the brokers: it opens the one a
// configuration names through the registry (adapters/broker), with every
// broker linked in (adapters/all), runs the embedded server, and reads bus
// dead-letter queues. Each broker's own knowledge (its section, defaults,
// validation, constructor) lives in its package under adapters/.
package brokers

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/nats-io/nats-server/v2/server"

	_ "github.com/emitd/emitd/adapters/all" // every broker
	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/publisher"
)

// Open connects to the broker named kind (commands.broker or events.broker).
// For the embedded broker it connects to the server the daemon runs; see
// StartEmbedded. The configuration has been validated: the section of kind
// is there.
func Open(ctx context.Context, kind string, cfg *configs.Config, logger watermill.LoggerAdapter) (broker.Broker, error) {
	return broker.Open(ctx, kind, cfg, logger)
}

// EventFormat is how envelopes travel on the events broker (events.format,
// events.cloudevents.mode): the relay publishes, and replay re-publishes,
// in it.
func EventFormat(cfg *configs.Config) publisher.Format {
	if cfg.Events.Format != configs.FormatCloudEvents {
		return publisher.Format{Name: publisher.FormatEventBridge}
	}
	return publisher.Format{Name: publisher.FormatCloudEvents, Mode: cfg.Events.CloudEvents.Mode}
}

// UsesEmbedded says whether commands or events use the embedded broker, whose
// server the daemon runs.
func UsesEmbedded(cfg *configs.Config) bool {
	return cfg.Commands.Broker == natsjs.EmbeddedName || cfg.Events.Broker == natsjs.EmbeddedName
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
	e := natsjs.EmbeddedSectionOf(cfg)
	dir := filepath.Join(cfg.DataDir, "nats")
	srv, url, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{Dir: dir, Host: e.Host, Port: e.Port, Logger: logger})
	if err != nil {
		if errors.Is(err, natsjs.ErrNotReady) {
			err = fmt.Errorf("%w: is another emitd or program listening on %s? set brokers.embedded.port to move it", err, e.Addr())
		}
		return nil, err
	}
	return &Embedded{srv: srv, url: url, dir: dir}, nil
}

// URL is the client URL (nats://host:port).
func (e *Embedded) URL() string { return e.url }

// StoreDir is where JetStream keeps its files.
func (e *Embedded) StoreDir() string { return e.dir }

// Shutdown stops the server, once it has applied the acknowledgements it
// received (at most a second), and waits until it has stopped.
func (e *Embedded) Shutdown() { natsjs.ShutdownEmbedded(e.srv, time.Second) }
