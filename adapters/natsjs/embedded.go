package natsjs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/nats-io/nats-server/v2/server"
)

// DefaultEmbeddedPort is where the embedded broker listens unless told
// otherwise. Not 4222, NATS's own default: a NATS server already running on
// the machine (as on our test machines) is there, and an emitd that took 4222
// would either fail to start or, worse, have services that mean "the
// machine's NATS" talk to emitd's private broker. 4223 is avoided too: it is
// the customary "second local NATS" port (and nats-server's own tests use
// it). 4233 is free on our machines (`ss -ltn`) and keeps the 42xx family
// recognisable.
const DefaultEmbeddedPort = 4233

// ErrNotReady: the embedded server did not accept connections in time,
// usually because something else holds its port.
var ErrNotReady = errors.New("not ready")

// EmbeddedConfig configures StartEmbedded.
type EmbeddedConfig struct {
	// Dir holds the JetStream file store (created if missing). Required:
	// the embedded broker exists to keep events across restarts.
	Dir string
	// Host to listen on; "127.0.0.1" when empty. Only loopback addresses
	// are accepted: the embedded broker has no authentication.
	Host string
	// Port to listen on: DefaultEmbeddedPort when 0, a random free port
	// when negative (tests).
	Port int
	// ReadyTimeout bounds the wait for the server to accept connections;
	// 10 s when zero.
	ReadyTimeout time.Duration
	// Logger receives the server's own log lines (component=nats-server),
	// so that they come out in emitd's format; nil: the server logs
	// nothing.
	Logger watermill.LoggerAdapter
}

// serverLogger hands nats-server's log lines to a Watermill logger. Its
// notices (the start-up banner, a dozen lines) are debug detail for emitd;
// warnings show at info, marked as such.
type serverLogger struct{ l watermill.LoggerAdapter }

var serverFields = watermill.LogFields{"component": "nats-server"}

func (s serverLogger) Noticef(format string, v ...any) {
	s.l.Debug(fmt.Sprintf(format, v...), serverFields)
}
func (s serverLogger) Warnf(format string, v ...any) {
	s.l.Info(fmt.Sprintf(format, v...), watermill.LogFields{"component": "nats-server", "severity": "warning"})
}
func (s serverLogger) Fatalf(format string, v ...any) {
	s.l.Error(fmt.Sprintf(format, v...), nil, watermill.LogFields{"component": "nats-server", "severity": "fatal"})
}
func (s serverLogger) Errorf(format string, v ...any) {
	s.l.Error(fmt.Sprintf(format, v...), nil, serverFields)
}
func (s serverLogger) Debugf(format string, v ...any) {
	s.l.Trace(fmt.Sprintf(format, v...), serverFields)
}
func (s serverLogger) Tracef(format string, v ...any) {
	s.l.Trace(fmt.Sprintf(format, v...), serverFields)
}

// StartEmbedded runs nats-server in this process with JetStream on, file
// storage under cfg.Dir, listening on loopback only. It returns once the
// server accepts connections, with the URL clients use. Stop it with
// srv.Shutdown() then srv.WaitForShutdown().
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, string, error) {
	if cfg.Dir == "" {
		return nil, "", errors.New("natsjs: EmbeddedConfig.Dir is empty")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	ip := net.ParseIP(cfg.Host)
	if cfg.Host == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
		cfg.Host = "127.0.0.1"
	}
	if ip == nil || !ip.IsLoopback() {
		return nil, "", fmt.Errorf("natsjs: embedded broker host %q is not a loopback address", cfg.Host)
	}
	switch {
	case cfg.Port == 0:
		cfg.Port = DefaultEmbeddedPort
	case cfg.Port < 0:
		cfg.Port = server.RANDOM_PORT
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, "", fmt.Errorf("natsjs: embedded store dir: %w", err)
	}

	opts := &server.Options{
		ServerName: "emitd-embedded",
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		NoSigs:     true, // the daemon owns signal handling
		NoLog:      cfg.Logger == nil,
		// No HTTP monitoring, no cluster, no leafnodes: nothing else listens.
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, "", fmt.Errorf("natsjs: embedded server: %w", err)
	}
	if cfg.Logger != nil {
		srv.SetLoggerV2(serverLogger{cfg.Logger}, false, false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(cfg.ReadyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, "", fmt.Errorf("natsjs: embedded server on %s %w after %s (port taken?)",
			net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), ErrNotReady, cfg.ReadyTimeout)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, "", errors.New("natsjs: embedded server started without JetStream")
	}
	return srv, srv.ClientURL(), nil
}

// ShutdownEmbedded stops an embedded server once it has processed the
// acknowledgements its clients sent, then waits until it has stopped.
//
// A JetStream consumer queues the acks it receives and applies them on its
// own goroutine, and a consumer stopped by a server shutdown drops what is
// still queued (nats-server's consumer stop unregisters the queue). The
// daemon closes its subscriber (which flushes its acks to the server) right
// before it shuts the embedded server down, so without this wait the last
// commands it acknowledged could still be pending after a restart and come
// back after the ack wait. The wait ends when no durable consumer has a
// delivery waiting for its ack, or after settle (a client still connected,
// such as `emitd tail`, may hold deliveries that it never acknowledges).
func ShutdownEmbedded(srv *server.Server, settle time.Duration) {
	deadline := time.Now().Add(settle)
	for time.Now().Before(deadline) && ackPending(srv) {
		time.Sleep(5 * time.Millisecond)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
}

// ackPending says whether a durable consumer of srv has deliveries that
// are not acknowledged yet.
func ackPending(srv *server.Server) bool {
	info, err := srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true, Consumer: true})
	if err != nil {
		return false
	}
	for _, a := range info.AccountDetails {
		for _, st := range a.Streams {
			for _, c := range st.Consumer {
				if c != nil && c.Config != nil && c.Config.Durable != "" && c.NumAckPending > 0 {
					return true
				}
			}
		}
	}
	return false
}
