package natsjs

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Ping says whether the server answers for topic: the connection is up and
// JetStream returns the topic's stream. While the connection is down
// (nats.go reconnects in the background) it fails at once.
func (p *Publisher) Ping(ctx context.Context, topic string) error {
	if !p.nc.IsConnected() {
		return fmt.Errorf("nats: not connected to %s (%s)", p.cfg.addresses(), p.nc.Status())
	}
	if _, err := p.js.Stream(ctx, p.cfg.StreamName(topic)); err != nil {
		return fmt.Errorf("nats: stream %s: %w", p.cfg.StreamName(topic), err)
	}
	return nil
}

// QueueDepth is how many messages of topic the group has still to take:
// those its durable consumer has not delivered plus those delivered and
// not acknowledged; every message the stream holds while the group has no
// consumer yet. It reads consumer and stream info only.
func (p *Publisher) QueueDepth(ctx context.Context, topic, group string) (int64, error) {
	stream, err := p.js.Stream(ctx, p.cfg.StreamName(topic))
	if err != nil {
		return 0, fmt.Errorf("nats: stream %s: %w", p.cfg.StreamName(topic), err)
	}
	c, err := stream.Consumer(ctx, group)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		info, err := stream.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("nats: stream %s: %w", p.cfg.StreamName(topic), err)
		}
		return int64(info.State.Msgs), nil
	}
	if err != nil {
		return 0, fmt.Errorf("nats: consumer %s of %s: %w", group, p.cfg.StreamName(topic), err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("nats: consumer %s of %s: %w", group, p.cfg.StreamName(topic), err)
	}
	return int64(info.NumPending) + int64(info.NumAckPending), nil
}
