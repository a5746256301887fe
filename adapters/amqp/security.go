package amqp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/tlsconfig"
	"github.com/emitd/emitd/configs/redact"
)

// Security settings of Config:
//
//   - TLS: an amqps:// URL (port 5671 by default) turns TLS on, with the
//     system's roots unless TLS.CAFile says otherwise; TLS.CertFile and
//     TLS.KeyFile present a client certificate. TLS settings with an amqp://
//     URL are an error (Problems): amqp091 would ignore them and talk plain
//     text, and the two schemes have different ports, so the mismatch is
//     more likely a mistake than a wish.
//   - User and Password, when User is set, replace the URL's user
//     information (SASL PLAIN), so the URL can stay free of secrets.

// Problems are the static mistakes in c's security settings (no file is
// read), each naming its field under path (e.g. "brokers.amqp").
func (c Config) Problems(path string) []string {
	out := c.TLS.Problems(path + ".tls")
	if c.TLS.On() && !c.amqps() {
		out = append(out, path+".tls is set but "+path+".url is not amqps://: TLS is used only with amqps:// (RabbitMQ's TLS port is 5671)")
	}
	if c.Password != "" && c.User == "" {
		out = append(out, path+".password is set without "+path+".user")
	}
	return out
}

func (c Config) amqps() bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(c.URL)), "amqps://")
}

// dialConfig is the amqp091 configuration of c: TLS and the credentials
// given apart from the URL. Dial's defaults otherwise.
func (c Config) dialConfig() (*amqp091.Config, error) {
	if p := c.Problems("brokers.amqp"); len(p) > 0 {
		return nil, errors.New(p[0])
	}
	if _, err := amqp091.ParseURI(c.URL); err != nil {
		// net/url's errors quote the whole URL, or pieces of it that
		// may be pieces of the password: none of it is shown.
		return nil, fmt.Errorf("brokers.amqp.url: invalid URL: %w", redact.ParseError(err))
	}
	ac := &amqp091.Config{Locale: "en_US", Properties: amqp091.Table{"connection_name": "emitd"}}
	if c.TLS.On() {
		tc, err := c.TLS.Build()
		if err != nil {
			return nil, fmt.Errorf("brokers.amqp.%w", err)
		}
		ac.TLSClientConfig = tc
	}
	if c.User != "" {
		ac.SASL = []amqp091.Authentication{&amqp091.PlainAuth{Username: c.User, Password: c.Password}}
	}
	return ac, nil
}

// address is host:port of c.URL (its default port when none), never its
// user information.
func (c Config) address() string {
	uri, err := amqp091.ParseURI(c.URL)
	if err != nil {
		return "(unparsable URL)"
	}
	return net.JoinHostPort(uri.Host, fmt.Sprint(uri.Port))
}

func (c Config) vhost() string {
	uri, err := amqp091.ParseURI(c.URL)
	if err != nil || uri.Vhost == "" {
		return "/"
	}
	return uri.Vhost
}

// user is the user the connection logs in as: User, else the URL's, else
// amqp091's default "guest".
func (c Config) user() string {
	if c.User != "" {
		return c.User
	}
	if u, err := url.Parse(c.URL); err == nil && u.User != nil {
		return u.User.Username()
	}
	return "guest"
}

// ConnectError is a failure to reach, secure or log in to the broker:
// broker.ConnectError, with Broker "amqp".
type ConnectError = broker.ConnectError

// connectError classifies a dial failure: amqp091's *Error codes (RabbitMQ
// closes a refused login with 403 ACCESS_REFUSED, a vhost it may not use
// with 530 NOT_ALLOWED) and the TLS error types.
//
// amqp091 turns a read error during the opening handshake into an *Error
// with code 501 (FRAME_ERROR) and the error's text as its reason: the type
// is lost, so a TLS alert that arrives after the handshake (TLS 1.3: a
// refused client certificate) cannot be told from a closed connection.
// Then one TLS connection of emitd's own, which sends the AMQP protocol
// header and reads RabbitMQ's first answer, shows what happened, by type.
func (c Config) connectError(err error, tc *tls.Config) error {
	e := &ConnectError{Broker: "amqp", Address: c.address(), Step: "connect", Err: err}
	var aerr *amqp091.Error
	isAMQP := errors.As(err, &aerr)
	closed := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, amqp091.ErrClosed) ||
		(isAMQP && aerr.Code == amqp091.FrameError)
	user := fmt.Sprintf("user %q", c.user())
	vhost := fmt.Sprintf("open vhost %q", c.vhost())
	switch {
	case c.amqps() && !closed && tlsconfig.Explain(err) != "":
		e.Step, e.Reason = "TLS handshake", tlsconfig.Explain(err)
	case isAMQP && aerr == amqp091.ErrSASL:
		e.Step, e.Login, e.Reason = "authentication", user, "the broker offers no mechanism emitd speaks (PLAIN, AMQPLAIN)"
	case isAMQP && aerr == amqp091.ErrVhost:
		e.Step, e.Login, e.Reason = vhost, user, "the user has no access to this vhost"
	case isAMQP && aerr.Code == amqp091.AccessRefused:
		e.Step, e.Login, e.Reason = "authentication", user, "the broker refused the user name or password"
	case isAMQP && aerr.Code == amqp091.NotAllowed:
		e.Step, e.Login, e.Reason = vhost, user, "the vhost does not exist or the user may not use it"
	case closed && c.amqps():
		perr := probeTLS(e.Address, tc)
		switch {
		case perr != nil && tlsconfig.Explain(perr) != "":
			e.Step, e.Reason = "TLS handshake", tlsconfig.Explain(perr)
		case perr != nil:
			e.Step, e.Reason = "TLS handshake", "the connection was closed during the TLS handshake: does this port speak TLS?"
		default:
			e.Reason = "the broker closed the connection during the login (TLS works)"
		}
	case closed:
		e.Reason = "the broker closed the connection before the login: does this port want TLS (amqps://)?"
	default:
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			e.Reason = "no broker answers at this address"
		}
	}
	return e
}

// probeTLS connects to addr with TLS, sends the AMQP 0-9-1 protocol header
// and reads the first byte of the broker's answer (RabbitMQ answers the
// header at once with connection.start); the first error, by type.
func probeTLS(addr string, tc *tls.Config) error {
	conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil // not a TLS matter
	}
	defer conn.Close()
	// A bound on a broker that never answers, not a timing assumption.
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if tc == nil {
		tc = &tls.Config{}
	}
	tc = tc.Clone()
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(addr)
	}
	c := tls.Client(conn, tc)
	if err := c.Handshake(); err != nil {
		return err
	}
	if _, err := c.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 1))
	return err
}
