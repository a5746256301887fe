package natsjs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/tlsconfig"
	"github.com/emitd/emitd/configs"
)

// The two NATS brokers: embedded (the in-process server the daemon runs)
// and nats (an external server). Both are NATS JetStream, differing only in
// who runs the server.
const (
	EmbeddedName = "embedded"
	NATSName     = "nats"
)

func init() {
	broker.Register(broker.Spec{Name: EmbeddedName, Commands: true, Events: true, Implicit: true,
		NewSection: func() configs.BrokerSection { return new(EmbeddedSection) },
		Open: func(_ context.Context, cfg *configs.Config, logger watermill.LoggerAdapter) (broker.Broker, error) {
			return openNATS(EmbeddedName, Config{URL: EmbeddedSectionOf(cfg).URL(), Logger: logger})
		}})
	broker.Register(broker.Spec{Name: NATSName, Commands: true, Events: true,
		NewSection: func() configs.BrokerSection { return new(NATSSection) },
		Open: func(_ context.Context, cfg *configs.Config, logger watermill.LoggerAdapter) (broker.Broker, error) {
			return openNATS(NATSName, NATSSectionOf(cfg).adapterConfig(logger))
		}})
}

// EmbeddedSection (brokers.embedded) is the in-process NATS JetStream server.
type EmbeddedSection struct {
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
}

// EmbeddedSectionOf is cfg's brokers.embedded, nil when there is none (a
// configuration whose brokers use the embedded one always has it).
func EmbeddedSectionOf(cfg *configs.Config) *EmbeddedSection {
	s, _ := cfg.Brokers.Section(EmbeddedName).(*EmbeddedSection)
	return s
}

// Addr is host:port. JoinHostPort brackets an IPv6 host ([::1]:4233);
// joined by hand, "::1:4233" is no address at all.
func (e *EmbeddedSection) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// URL is the client URL of the embedded server.
func (e *EmbeddedSection) URL() string { return "nats://" + e.Addr() }

// Defaults implements configs.BrokerSection.
func (e *EmbeddedSection) Defaults(*configs.Config) {
	if e.Host == "" {
		e.Host = "127.0.0.1"
	}
	if e.Port == 0 {
		e.Port = DefaultEmbeddedPort
	}
}

// Validate implements configs.BrokerSection.
func (e *EmbeddedSection) Validate(c *configs.Config, add func(string, string, ...any)) {
	if e.Port < 1 || e.Port > 65535 {
		add("brokers.embedded.port", "must be between 1 and 65535, got %d", e.Port)
	}
	if e.Host != "127.0.0.1" && e.Host != "localhost" && e.Host != "::1" {
		add("brokers.embedded.host", "must be a loopback address (127.0.0.1, ::1, localhost), got %q: the embedded broker has no authentication", e.Host)
	}
	validateJetStream(c, EmbeddedName, add)
}

// NATSSection (brokers.nats) points at an external NATS server with
// JetStream. Topics and buses are subjects; each has a stream EMITD_<name>,
// created at start.
type NATSSection struct {
	// URL of the server (several comma-separated for a cluster), e.g.
	// nats://127.0.0.1:4222. Credentials may go in the URL
	// (nats://user:pass@host:4222).
	URL string `yaml:"url" secret:"url"`
	// URLFile is a file holding brokers.nats.url (a mounted secret), read at start.
	URLFile string `yaml:"urlFile" file:"true"`
	// At most one way to log in, given apart from the URL (they replace
	// its user information): a creds file (user JWT and nkey seed, as
	// `nsc` writes it; NGS, operator-mode servers), an nkey seed file, a
	// user and password, or a token.
	CredsFile    string `yaml:"credsFile" file:"true"`
	NkeySeedFile string `yaml:"nkeySeedFile" file:"true"`
	User         string `yaml:"user"`
	Password     string `yaml:"password" secret:"true"`
	PasswordFile string `yaml:"passwordFile" file:"true"`
	Token        string `yaml:"token" secret:"true"`
	TokenFile    string `yaml:"tokenFile" file:"true"`
	// TLS: on with a tls:// URL or any field here (caFile for a private
	// CA, certFile/keyFile for mutual TLS, serverName).
	TLS tlsconfig.Config `yaml:"tls"`
}

// adapterConfig is the adapter's configuration of this section.
func (n *NATSSection) adapterConfig(logger watermill.LoggerAdapter) Config {
	return Config{URL: n.URL, Logger: logger, CredsFile: n.CredsFile, NkeySeedFile: n.NkeySeedFile,
		User: n.User, Password: n.Password, Token: n.Token, TLS: n.TLS}
}

// NATSSectionOf is cfg's brokers.nats, nil when there is none.
func NATSSectionOf(cfg *configs.Config) *NATSSection {
	s, _ := cfg.Brokers.Section(NATSName).(*NATSSection)
	return s
}

// Defaults implements configs.BrokerSection.
func (n *NATSSection) Defaults(*configs.Config) {}

// Validate implements configs.BrokerSection.
func (n *NATSSection) Validate(c *configs.Config, add func(string, string, ...any)) {
	if n.URL == "" {
		add("brokers.nats.url", "required, e.g. nats://127.0.0.1:4222")
	} else if !configs.HasScheme(n.URL, "nats", "tls", "ws", "wss") {
		// Not quoted: it may hold a password.
		add("brokers.nats.url", "want nats://host:port (or tls://, ws://, wss://); the value is not shown (it may hold a password)")
	}
	tlsconfig.AddProblems(n.adapterConfig(nil).Problems("brokers.nats"), add)
	n.TLS.CheckFiles("brokers.nats.tls", add)
	validateJetStream(c, NATSName, add)
}

// RedeliveryDeadline implements configs.RedeliveryDeadliner: the
// consumers' AckWait (this adapter's default).
func (*EmbeddedSection) RedeliveryDeadline() (time.Duration, string) { return jetStreamAckWait() }

// RedeliveryDeadline implements configs.RedeliveryDeadliner.
func (*NATSSection) RedeliveryDeadline() (time.Duration, string) { return jetStreamAckWait() }

// DuplicateWindow implements configs.DuplicateWindower: the streams'
// duplicate window (the server's default: this adapter sets none).
func (*EmbeddedSection) DuplicateWindow() (time.Duration, string) { return jetStreamDuplicates() }

// DuplicateWindow implements configs.DuplicateWindower.
func (*NATSSection) DuplicateWindow() (time.Duration, string) { return jetStreamDuplicates() }

func jetStreamAckWait() (time.Duration, string) { return DefaultAckWait, "NATS JetStream's AckWait" }
func jetStreamDuplicates() (time.Duration, string) {
	return DefaultDuplicateWindow, "JetStream's duplicate window"
}

// natsName: a durable consumer name (commands.group).
var natsName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// validateJetStream checks what JetStream asks of the names on the broker
// kind: the group names a durable consumer, topics and buses are subjects.
func validateJetStream(c *configs.Config, kind string, add func(string, string, ...any)) {
	if c.Commands.Broker == kind && c.Commands.Group != "" && !natsName.MatchString(c.Commands.Group) {
		add("commands.group", "%q: on %s the group names a JetStream consumer: only letters, digits, - and _", c.Commands.Group, kind)
	}
	for _, t := range configs.TopicsOn(c, kind) {
		if !isSubject(t.Name) {
			add(t.Path, "%q is not a valid NATS subject: no wildcards (* >), spaces or empty tokens", t.Name)
		}
	}
}

// natsBroker serves both the embedded broker and an external NATS server.
type natsBroker struct {
	name string
	cfg  Config
	pub  *Publisher
}

func openNATS(name string, cfg Config) (broker.Broker, error) {
	cfg.NatsOptions = []nats.Option{nats.Name("emitd")}
	pub, err := NewPublisher(cfg)
	if err != nil {
		if name == EmbeddedName && errors.Is(err, nats.ErrNoServers) {
			return nil, fmt.Errorf("cannot reach the embedded broker at %s: is `emitd serve` running with this configuration? (%w)", cfg.URL, err)
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

func (b *natsBroker) Subscriber(opts broker.SubscribeOptions) (message.Subscriber, error) {
	cfg := b.cfg
	cfg.DeliverAll = opts.FromBeginning
	cfg.MaxInFlight = opts.MaxInFlight
	if opts.Group != "" {
		return NewSubscriber(cfg, opts.Group)
	}
	sub, err := NewSubscriber(cfg, "")
	return broker.Reader(sub, err, b.name, cfg.Logger)
}
