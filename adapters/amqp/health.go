package amqp

import (
	"context"
	"errors"
	"fmt"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Ping says whether the broker answers: the connection is up and the
// exchange exists (a passive declare, on a channel of its own, since a
// failed passive declare closes its channel). topic is not needed: every
// topic is a routing key on the one exchange.
func (p *Publisher) Ping(ctx context.Context, _ string) error {
	return p.passive(ctx, func(ch *amqp091.Channel) error {
		return ch.ExchangeDeclarePassive(p.cfg.Exchange, "topic", true, false, false, false, nil)
	})
}

// QueueDepth is how many messages wait, ready, in group's durable queue on
// topic (a passive queue declare: it reads the count and changes nothing;
// messages delivered and not yet acknowledged are not counted by RabbitMQ).
func (p *Publisher) QueueDepth(ctx context.Context, topic, group string) (int64, error) {
	var n int64
	err := p.passive(ctx, func(ch *amqp091.Channel) error {
		q, err := ch.QueueDeclarePassive(QueueName(topic, group), true, false, false, false, nil)
		n = int64(q.Messages)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("amqp: queue %q: %w", QueueName(topic, group), err)
	}
	return n, nil
}

// passive runs fn on a new channel, closed after, within ctx (amqp091's
// declares take no context).
func (p *Publisher) passive(ctx context.Context, fn func(*amqp091.Channel) error) error {
	if !p.conn.IsConnected() {
		return errors.New("amqp: not connected")
	}
	done := make(chan error, 1)
	go func() {
		conn := p.conn.Connection()
		if conn == nil {
			done <- errors.New("amqp: not connected")
			return
		}
		ch, err := conn.Channel()
		if err != nil {
			done <- fmt.Errorf("amqp: open a channel: %w", err)
			return
		}
		defer ch.Close()
		done <- fn(ch)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("amqp: no answer: %w", ctx.Err())
	}
}
