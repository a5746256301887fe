package router

import (
	"context"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/publisher"
)

// Intake is the commands subscriber as the router sees it. It hands every
// message to the pipeline in the order the broker delivered it, before the
// router spreads messages over handler goroutines (which would lose that
// order), and it bounds the messages taken and not yet acknowledged to
// Pipeline.MaxInFlight, so that a crash or a slow store leaves at most that
// many waiting out the broker's redelivery deadline.
//
// It also makes shutdown graceful. Watermill's router closes the subscriber
// as soon as it starts closing, while handlers still run; adapters then drop
// late acks, and a command that was processed would come back. Intake
// subscribes with a context the router's close does not cancel; its Close
// stops taking messages, lets the batch being committed finish, leaves what
// is queued for redelivery, waits until every message it handed out was
// acknowledged or nacked (or Timeout), and only then closes the real
// subscriber, which sends (flushes) the acknowledgements it holds.
type Intake struct {
	message.Subscriber
	Pipeline *Pipeline
	Timeout  time.Duration

	mu       sync.Mutex
	closing  bool
	stop     chan struct{}
	slots    chan struct{} // one per message in flight
	once     sync.Once
	inflight sync.WaitGroup
	held     map[*message.Message]func() // in flight, with their in-progress signal; under mu
}

func (in *Intake) init() {
	in.once.Do(func() {
		in.Pipeline.start()
		in.stop = make(chan struct{})
		in.slots = make(chan struct{}, in.Pipeline.MaxInFlight)
		in.held = map[*message.Message]func(){}
		in.Pipeline.OnHold = in.touch
	})
}

// Subscribe implements message.Subscriber.
func (in *Intake) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in.init()
	src, err := in.Subscriber.Subscribe(context.WithoutCancel(ctx), topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		for {
			select {
			case in.slots <- struct{}{}:
			case <-in.stop:
				return
			}
			var msg *message.Message
			var ok bool
			select {
			case msg, ok = <-src:
			case <-in.stop:
				<-in.slots
				return
			}
			if !ok {
				return
			}
			if !in.take(msg) {
				<-in.slots
				msg.Nack() // closing: give it back at once, for the next instance
				continue
			}
			it := in.Pipeline.admit(msg)
			msg.SetContext(context.WithValue(msg.Context(), itemKey{}, it))
			go func() {
				defer func() { in.release(msg); <-in.slots; in.inflight.Done() }()
				select {
				case <-msg.Acked():
				case <-msg.Nacked():
				}
			}()
			select {
			case out <- msg:
			case <-in.stop: // nobody will handle it now
				msg.Nack()
				continue
			}
			select {
			case in.Pipeline.queue <- it:
			case <-in.stop:
				it.finish(ErrStopping)
			}
		}
	}()
	return out, nil
}

// take counts a message as in flight unless Close has begun; the lock
// orders every Add before Close's Wait.
func (in *Intake) take(msg *message.Message) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closing {
		return false
	}
	in.inflight.Add(1)
	in.held[msg] = publisher.InProgress(msg)
	return true
}

func (in *Intake) release(msg *message.Message) {
	in.mu.Lock()
	delete(in.held, msg)
	in.mu.Unlock()
}

// touch tells the broker of every message in flight that it is still being
// worked on (the pipeline calls it while it waits for the store), so that
// nothing is redelivered behind the messages that wait their turn.
func (in *Intake) touch() {
	in.mu.Lock()
	fns := make([]func(), 0, len(in.held))
	for _, fn := range in.held {
		if fn != nil {
			fns = append(fns, fn)
		}
	}
	in.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// Close stops the intake and the pipeline, waits for the messages in flight,
// then closes the real subscriber.
func (in *Intake) Close() error {
	in.init()
	in.mu.Lock()
	if !in.closing {
		in.closing = true
		close(in.stop)
	}
	in.mu.Unlock()
	in.Pipeline.Stop()
	done := make(chan struct{})
	go func() { in.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(in.Timeout):
	}
	return in.Subscriber.Close()
}
