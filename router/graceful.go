package router

import (
	"context"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// GracefulSubscriber lets the commands in flight at shutdown finish and be
// acknowledged. Watermill's router cancels the subscription's context and
// closes the subscriber as soon as it starts closing, while its handlers are
// still running; subscribers then drop the late acks (NATS stops waiting for
// them), and a command that was processed comes back after the broker's
// redelivery deadline. This subscriber subscribes with a context the
// router's close does not cancel, stops handing out messages once that close
// begins, and closes the real subscriber only after every message it handed
// out was acked or nacked (or timeout passed).
type GracefulSubscriber struct {
	message.Subscriber
	Timeout time.Duration

	inflight sync.WaitGroup
}

// Subscribe implements message.Subscriber.
func (g *GracefulSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := g.Subscriber.Subscribe(context.WithoutCancel(ctx), topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		for msg := range in {
			if ctx.Err() != nil {
				continue // closing: not handed out, never acked; the broker redelivers it
			}
			g.inflight.Add(1)
			go func() {
				defer g.inflight.Done()
				select {
				case <-msg.Acked():
				case <-msg.Nacked():
				}
			}()
			select {
			case out <- msg:
			case <-ctx.Done():
				msg.Nack() // taken but not handed out: give it back now
			}
		}
	}()
	return out, nil
}

// Close waits for the messages in flight, then closes the real subscriber.
func (g *GracefulSubscriber) Close() error {
	done := make(chan struct{})
	go func() { g.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(g.Timeout):
	}
	return g.Subscriber.Close()
}
