package amqp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/tlsconfig"
	"github.com/emitd/emitd/configs"
)

// BrokerName is the RabbitMQ broker's name (brokers.amqp).
const BrokerName = "amqp"

func init() {
	broker.Register(broker.Spec{Name: BrokerName, Commands: true, Events: true,
		NewSection: func() configs.BrokerSection { return new(Section) }, Open: open})
}

// Section (brokers.amqp) points at a RabbitMQ server. Everything is
// published to one durable topic exchange with routing key = topic or bus
// name.
type Section struct {
	// URL of the broker, e.g. amqp://guest:guest@127.0.0.1:5672/ (amqps://
	// for TLS).
	URL string `yaml:"url" secret:"url"`
	// URLFile is a file holding brokers.amqp.url (a mounted secret), read at start.
	URLFile string `yaml:"urlFile" file:"true"`
	// Exchange is the durable topic exchange. Default emitd.
	Exchange string `yaml:"exchange"`
	// Prefetch is how many unacknowledged commands the broker sends ahead.
	// Default: router.maxInFlight.
	Prefetch int `yaml:"prefetch"`
	// User and Password, when set, replace the URL's user information, so
	// that the URL can stay in the file and the password come from
	// ${VAR} or passwordFile.
	User         string `yaml:"user"`
	Password     string `yaml:"password" secret:"true"`
	PasswordFile string `yaml:"passwordFile" file:"true"`
	// TLS applies with an amqps:// URL: caFile for a private CA,
	// certFile/keyFile for mutual TLS, serverName.
	TLS tlsconfig.Config `yaml:"tls"`
}

// SectionOf is cfg's brokers.amqp, nil when there is none.
func SectionOf(cfg *configs.Config) *Section {
	s, _ := cfg.Brokers.Section(BrokerName).(*Section)
	return s
}

// Defaults implements configs.BrokerSection: the exchange and the prefetch
// are defaulted by the adapter (DefaultExchange) and at Subscriber
// (router.maxInFlight), so the file's values stay as written.
func (a *Section) Defaults(*configs.Config) {}

// Validate implements configs.BrokerSection.
func (a *Section) Validate(c *configs.Config, add func(string, string, ...any)) {
	if a.URL == "" {
		add("brokers.amqp.url", "required, e.g. amqp://guest:guest@127.0.0.1:5672/")
	} else if !configs.HasScheme(a.URL, "amqp", "amqps") {
		// Not quoted: it may hold a password.
		add("brokers.amqp.url", "want amqp://user:password@host:5672/vhost (or amqps://); the value is not shown (it may hold a password)")
	}
	tlsconfig.AddProblems(Config{URL: a.URL, User: a.User, Password: a.Password, TLS: a.TLS}.Problems("brokers.amqp"), add)
	a.TLS.CheckFiles("brokers.amqp.tls", add)
	if a.Prefetch < 0 {
		add("brokers.amqp.prefetch", "must be 0 (default router.maxInFlight) or more, got %d", a.Prefetch)
	}
	if strings.ContainsAny(a.Exchange, " \t") {
		add("brokers.amqp.exchange", "%q: no spaces", a.Exchange)
	}
	for _, t := range configs.TopicsOn(c, BrokerName) {
		if strings.ContainsAny(t.Name, "*#") || len(t.Name) > 200 {
			add(t.Path, "%q is not usable as an AMQP routing key: no * or # (topic-exchange wildcards), at most 200 bytes", t.Name)
		}
	}
	if c.Commands.Broker == BrokerName && strings.ContainsAny(c.Commands.Group, "*#") {
		add("commands.group", "%q: no * or # (it ends the commands queue name)", c.Commands.Group)
	}
}

type amqpBroker struct {
	cfg  *configs.Config
	acfg Config
	pub  *Publisher
}

func open(_ context.Context, cfg *configs.Config, logger watermill.LoggerAdapter) (broker.Broker, error) {
	a := SectionOf(cfg)
	// Outcomes are published without the mandatory flag: an answer nobody
	// bound a queue for is dropped (a queue of emitd's that nobody reads
	// would only grow); envelopes and dead letters wait until bound.
	acfg := Config{URL: a.URL, Exchange: a.Exchange, Prefetch: a.Prefetch, Logger: logger,
		User: a.User, Password: a.Password, TLS: a.TLS,
		DropUnroutable: []string{cfg.Commands.ResultsTopic}}
	pub, err := NewPublisher(acfg)
	if err != nil {
		return nil, acfg.namingField(err)
	}
	return &amqpBroker{cfg: cfg, acfg: acfg, pub: pub}, nil
}

func (b *amqpBroker) Name() string                 { return BrokerName }
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
func (b *amqpBroker) Subscriber(opts broker.SubscribeOptions) (message.Subscriber, error) {
	acfg := b.acfg
	if acfg.Prefetch == 0 {
		acfg.Prefetch = opts.MaxInFlight
	}
	sub, err := NewSubscriber(acfg, opts.Group)
	if opts.Group != "" {
		return sub, err
	}
	return broker.Reader(sub, err, BrokerName, b.acfg.Logger)
}

// EnsureTopics declares the exchange and the durable queues that must exist
// before anything is published: the commands topic's for commands.group and
// the poison queue's for broker.DeadLetterGroup. RabbitMQ drops what no
// queue is bound for, and a command sent while no emitd runs, or a dead
// letter, must wait rather than vanish. Results and buses get no queue of
// emitd's: their consumers bind their own (a queue nobody reads would only
// grow).
func (b *amqpBroker) EnsureTopics(_ context.Context, topics ...string) error {
	groups := map[string]string{} // topic -> the group whose queue it needs
	for _, topic := range topics {
		if b.cfg.Commands.Broker != BrokerName {
			break
		}
		switch topic {
		case b.cfg.Commands.Topic:
			groups[topic] = b.cfg.Commands.Group
		case b.cfg.Commands.DLQTopic:
			groups[topic] = broker.DeadLetterGroup
		}
	}
	for topic, group := range groups {
		sub, err := NewSubscriber(b.acfg, group)
		if err != nil {
			return b.acfg.namingField(err)
		}
		err = sub.SubscribeInitialize(topic)
		sub.Close()
		if err != nil {
			return fmt.Errorf("%s: declare queue %s: %w", broker.TopicPath(b.cfg, topic), QueueName(topic, group), err)
		}
	}
	return nil
}

// namingField adds the setting a failure to connect points to: the URL,
// but the tls section for a failed handshake and the user and password
// fields for a refused login they gave (naming the URL there sends the
// operator to a value that is not the one refused).
func (c Config) namingField(err error) error {
	field := "brokers.amqp.url"
	var ce *ConnectError
	if errors.As(err, &ce) {
		switch {
		case ce.Step == "TLS handshake":
			field = "brokers.amqp.tls"
		case ce.Step == "authentication" && c.User != "":
			field = "brokers.amqp.user and brokers.amqp.password"
		}
	}
	return fmt.Errorf("%w (%s)", err, field)
}
