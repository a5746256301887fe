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
// them, an SQS delete is cancelled, Kafka skips marking the offset), and a
// command that was processed comes back after the restart. This subscriber
// subscribes with a context the router's close does not cancel, stops
// handing out messages once its Close begins, and closes the real subscriber
// only after every message it handed out was acked or nacked, plus AckSettle
// for the adapter to send that ack (adapters send it from their own
// goroutine after Ack returns), or after Timeout.
type GracefulSubscriber struct {
	message.Subscriber
	Timeout   time.Duration
	AckSettle time.Duration

	mu       sync.Mutex
	closing  bool
	stop     chan struct{} // closed by Close; made by init
	once     sync.Once
	inflight sync.WaitGroup
}

func (g *GracefulSubscriber) init() { g.once.Do(func() { g.stop = make(chan struct{}) }) }

// DefaultAckSettle is long enough for a local broker round trip (an SQS
// DeleteMessage, a NATS ack) to finish.
const DefaultAckSettle = 500 * time.Millisecond

// Subscribe implements message.Subscriber.
func (g *GracefulSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	g.init()
	in, err := g.Subscriber.Subscribe(context.WithoutCancel(ctx), topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		for msg := range in {
			if !g.take() {
				msg.Nack() // closing: give it back at once, for the next instance
				continue
			}
			go func() {
				defer g.inflight.Done()
				select {
				case <-msg.Acked():
				case <-msg.Nacked():
				}
			}()
			select {
			case out <- msg:
			case <-g.stop: // nobody will handle it now
				msg.Nack()
			}
		}
	}()
	return out, nil
}

// take counts a message as in flight unless Close has begun; the lock
// orders every Add before Close's Wait.
func (g *GracefulSubscriber) take() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.inflight.Add(1)
	return true
}

// Close waits for the messages in flight, then closes the real subscriber.
func (g *GracefulSubscriber) Close() error {
	g.init()
	g.mu.Lock()
	if !g.closing {
		g.closing = true
		close(g.stop)
	}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.inflight.Wait(); close(done) }()
	select {
	case <-done:
		time.Sleep(g.AckSettle)
	case <-time.After(g.Timeout):
	}
	return g.Subscriber.Close()
}
