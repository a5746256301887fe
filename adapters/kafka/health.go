package kafka

import (
	"context"
	"errors"
	"fmt"
)

// Ping says whether the cluster answers for topic: a metadata request for
// it, on the producer's own client. Sarama's requests take no context, so
// the request goes on in the background when ctx ends first; until it
// returns, further pings fail at once instead of piling up.
func (p *Publisher) Ping(ctx context.Context, topic string) error {
	if !p.pinging.CompareAndSwap(false, true) {
		return errors.New("kafka: the previous metadata request is still unanswered")
	}
	done := make(chan error, 1)
	go func() {
		defer p.pinging.Store(false)
		// Not under p.mu: a request to a cluster that is away may take
		// Sarama's dial timeout, and Close must not wait for it (a closed
		// client answers ErrClosedClient).
		done <- p.client.RefreshMetadata(topic)
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("kafka: metadata of %q: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka: no metadata of %q: %w", topic, ctx.Err())
	}
}
