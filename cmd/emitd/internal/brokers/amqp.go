package brokers

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/amqp"
	"github.com/emitd/emitd/configs"
)

type amqpBroker struct {
	cfg  *configs.Config
	acfg amqp.Config
	pub  *amqp.Publisher
}

func openAMQP(cfg *configs.Config, logger watermill.LoggerAdapter) (Broker, error) {
	a := cfg.Brokers.AMQP
	// Outcomes are published without the mandatory flag: an answer nobody
	// bound a queue for is dropped (a queue of emitd's that nobody reads
	// would only grow); envelopes and dead letters wait until bound.
	acfg := amqp.Config{URL: a.URL, Exchange: a.Exchange, Prefetch: a.Prefetch, Logger: logger,
		DropUnroutable: []string{cfg.Commands.ResultsTopic}}
	pub, err := amqp.NewPublisher(acfg)
	if err != nil {
		return nil, fmt.Errorf("%w (brokers.amqp.url)", err)
	}
	return &amqpBroker{cfg: cfg, acfg: acfg, pub: pub}, nil
}

func (b *amqpBroker) Name() string                 { return configs.BrokerAMQP }
func (b *amqpBroker) Publisher() message.Publisher { return b.pub }
func (b *amqpBroker) Close() error                 { return b.pub.Close() }

func (b *amqpBroker) Ping(ctx context.Context, topic string) error { return b.pub.Ping(ctx, topic) }

func (b *amqpBroker) QueueDepth(ctx context.Context, topic, group string) (int64, error) {
	return b.pub.QueueDepth(ctx, topic, group)
}

// Subscriber: a group reads its durable queue <topic>_<group>; a reader
// without group gets a private queue that sees what is published while it
// is subscribed (RabbitMQ keeps nothing for a queue that does not exist yet),
// so FromBeginning has no meaning here.
func (b *amqpBroker) Subscriber(opts SubscribeOptions) (message.Subscriber, error) {
	acfg := b.acfg
	if acfg.Prefetch == 0 {
		acfg.Prefetch = opts.MaxInFlight
	}
	sub, err := amqp.NewSubscriber(acfg, opts.Group)
	if opts.Group != "" {
		return sub, err
	}
	return reader(sub, err, configs.BrokerAMQP, b.acfg.Logger)
}

// EnsureTopics declares the exchange and the durable queues that must exist
// before anything is published: the commands topic's for commands.group and
// the poison queue's for DeadLetterGroup. RabbitMQ drops what no queue is
// bound for, and a command sent while no emitd runs, or a dead letter, must
// wait rather than vanish. Results and buses get no queue of emitd's: their
// consumers bind their own (a queue nobody reads would only grow).
func (b *amqpBroker) EnsureTopics(_ context.Context, topics ...string) error {
	groups := map[string]string{} // topic -> the group whose queue it needs
	for _, topic := range topics {
		if b.cfg.Commands.Broker != configs.BrokerAMQP {
			break
		}
		switch topic {
		case b.cfg.Commands.Topic:
			groups[topic] = b.cfg.Commands.Group
		case b.cfg.Commands.DLQTopic:
			groups[topic] = DeadLetterGroup
		}
	}
	for topic, group := range groups {
		sub, err := amqp.NewSubscriber(b.acfg, group)
		if err != nil {
			return fmt.Errorf("%w (brokers.amqp.url)", err)
		}
		err = sub.SubscribeInitialize(topic)
		sub.Close()
		if err != nil {
			return fmt.Errorf("%s: declare queue %s: %w", topicPath(b.cfg, topic), amqp.QueueName(topic, group), err)
		}
	}
	return nil
}
