// Package tlsconfig is the TLS section the broker adapters share (Kafka,
// NATS, RabbitMQ): the yaml keys an operator writes, the *tls.Config they
// make, their static checks, and an explanation of a failed handshake in the
// operator's terms.
//
// It knows TLS only. Which URL scheme turns TLS on, how a broker reports a
// failed login, and the "<broker> <address>: <step> failed" shape of a
// connect error belong to each adapter.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"syscall"
)

// Config is the tls section of a broker. TLS is on when On reports it:
// Enabled, or any other field set (a CA file or a client certificate makes
// no sense in plain text, so setting one is taken as asking for TLS rather
// than silently ignored). Adapters whose URL scheme says TLS (tls://,
// amqps://) turn it on from the URL too.
type Config struct {
	// Enabled turns TLS on with the system's roots when nothing else is set
	// (Kafka: MSK, Confluent Cloud). Implied by any other field.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the certificate authorities that sign the
	// server's certificate; the system's roots when empty.
	CAFile string `yaml:"caFile" file:"true"`
	// CertFile and KeyFile are the client certificate and its key (PEM),
	// for brokers that authenticate clients by certificate (mutual TLS).
	// Both or neither.
	CertFile string `yaml:"certFile" file:"true"`
	KeyFile  string `yaml:"keyFile" file:"true"`
	// ServerName is the name checked against the server's certificate;
	// the host of the address dialled when empty.
	ServerName string `yaml:"serverName"`
	// InsecureSkipVerify accepts any server certificate. For tests only:
	// anyone on the path can pose as the broker.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
}

// On reports whether the section asks for TLS.
func (c Config) On() bool {
	return c.Enabled || c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" ||
		c.ServerName != "" || c.InsecureSkipVerify
}

// Problems are the static mistakes in the section (no file is read), each
// prefixed with path, the section's field path (e.g. "brokers.kafka.tls").
// Empty when there are none. Whether the files exist and hold what they
// should is Build's job (config validate calls it too).
func (c Config) Problems(path string) []string {
	var out []string
	if c.CertFile != "" && c.KeyFile == "" {
		out = append(out, path+".certFile is set but "+path+".keyFile is not: a client certificate needs its key")
	}
	if c.KeyFile != "" && c.CertFile == "" {
		out = append(out, path+".keyFile is set but "+path+".certFile is not: a client key needs its certificate")
	}
	if c.InsecureSkipVerify && c.CAFile != "" {
		out = append(out, path+".insecureSkipVerify is set with "+path+".caFile: the CA would not be checked; drop one")
	}
	return out
}

// Build reads the files and makes the client's *tls.Config; nil, nil when
// the section does not ask for TLS (see On). Errors name the field, e.g.
// "tls.caFile: no certificate found in ca.pem"; callers prefix the section's
// path.
func (c Config) Build() (*tls.Config, error) {
	if !c.On() {
		return nil, nil
	}
	if p := c.Problems("tls"); len(p) > 0 {
		return nil, errors.New(p[0])
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // documented as test only
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.caFile: no certificate found in %s (want PEM \"BEGIN CERTIFICATE\" blocks)", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		for field, file := range map[string]string{"tls.certFile": c.CertFile, "tls.keyFile": c.KeyFile} {
			if _, err := os.Stat(file); err != nil {
				return nil, fmt.Errorf("%s: %w", field, err)
			}
		}
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			// LoadX509KeyPair's messages say what is wrong (no PEM data,
			// key does not match) but not in which field.
			return nil, fmt.Errorf("tls.certFile %s / tls.keyFile %s: %w", c.CertFile, c.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Explain says, in an operator's terms, what a failed TLS dial or
// handshake points to, with the setting to look at; "" when err shows no
// sign of TLS (a refused TCP connection, a DNS failure, a broker's own
// refusal). It matches by type (errors.As), never by message.
func Explain(err error) string {
	if err == nil {
		return ""
	}
	var (
		unknownAuth x509.UnknownAuthorityError
		hostname    x509.HostnameError
		invalid     x509.CertificateInvalidError
		record      tls.RecordHeaderError
		alert       tls.AlertError
		verify      *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknownAuth):
		return "the server's certificate is signed by an unknown authority: set tls.caFile to the CA that signed it"
	case errors.As(err, &hostname):
		names := strings.Join(hostname.Certificate.DNSNames, ", ")
		for _, ip := range hostname.Certificate.IPAddresses {
			names = strings.TrimPrefix(names+", "+ip.String(), ", ")
		}
		if names == "" {
			names = hostname.Certificate.Subject.CommonName
		}
		return fmt.Sprintf("the server's certificate is not valid for %q (it names %s): connect by a name it names or set tls.serverName", hostname.Host, names)
	case errors.As(err, &invalid):
		switch invalid.Reason {
		case x509.Expired:
			return "the server's certificate has expired or is not yet valid (check the server's certificate and this machine's clock)"
		case x509.NotAuthorizedToSign:
			return "the server's certificate chain is signed by a certificate that is not a CA"
		case x509.IncompatibleUsage:
			return "the server's certificate is not meant for TLS servers (extended key usage)"
		default:
			return "the server's certificate is invalid: " + invalid.Error()
		}
	case errors.As(err, &record):
		return "the server does not speak TLS on this port (a plain-text listener?): use the broker's TLS port or turn TLS off"
	case errors.As(err, &alert):
		return explainAlert(alert)
	case remoteAlert(err, &alert):
		return explainAlert(alert)
	case errors.As(err, &verify):
		return "the server's certificate could not be verified: " + verify.Err.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "the connection was closed during the TLS handshake: the server may not speak TLS on this port, or it refused this client (client certificate, TLS version)"
	}
	// A timeout of the dial itself is no TLS matter (nothing answers at
	// the address); a timeout after it, on a connection that was set up
	// for TLS, is the handshake waiting for a server that does not speak it.
	var nerr net.Error
	var op *net.OpError
	if errors.As(err, &nerr) && nerr.Timeout() && !(errors.As(err, &op) && op.Op == "dial") {
		return "the TLS handshake timed out: the server may not speak TLS on this port"
	}
	return ""
}

// remoteAlert finds an alert the server sent. crypto/tls reports it as a
// *net.OpError{Op: "remote error"} around its unexported alert type (a
// uint8), not as the exported AlertError (which it uses for QUIC and for
// the alerts it sends itself), so the code is read by reflection rather than
// from the message.
func remoteAlert(err error, a *tls.AlertError) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return false
	}
	v := reflect.ValueOf(op.Err)
	if v.Kind() != reflect.Uint8 {
		return false
	}
	*a = tls.AlertError(v.Uint())
	return true
}

// Alert values the server sends when it refuses the client (RFC 8446 6.2).
const (
	alertHandshakeFailure    tls.AlertError = 40
	alertBadCertificate      tls.AlertError = 42
	alertCertificateUnknown  tls.AlertError = 46
	alertUnknownCA           tls.AlertError = 48
	alertProtocolVersion     tls.AlertError = 70
	alertCertificateRequired tls.AlertError = 116
)

func explainAlert(a tls.AlertError) string {
	switch a {
	case alertCertificateRequired:
		return "the server requires a client certificate: set tls.certFile and tls.keyFile"
	case alertBadCertificate, alertCertificateUnknown, alertUnknownCA:
		return "the server refused the client certificate (tls.certFile): it is not signed by a CA the server trusts, or is expired (" + a.Error() + ")"
	case alertProtocolVersion:
		return "the server refused the TLS version (emitd needs TLS 1.2 or later)"
	case alertHandshakeFailure:
		return "the server refused the handshake (no common cipher or TLS version, or a client certificate is required)"
	default:
		return "the server refused the TLS handshake: " + a.Error()
	}
}

// AddProblems hands problems as Problems (and the adapters' Problems
// methods) write them, "<field path> <message>", to a configuration
// validator's add, which writes "<field path>: <message>".
func AddProblems(problems []string, add func(path, format string, args ...any)) {
	for _, p := range problems {
		path, msg, _ := strings.Cut(p, " ")
		add(path, "%s", msg)
	}
}

// CheckFiles reports, for `config validate`, what Build finds wrong in the
// section's files (a CA file without a certificate, a key that does not
// match its certificate), under path (e.g. "brokers.kafka.tls"). A file
// that cannot be read at all is left to the configuration's own file check,
// which names its field, so that one mistake is one line.
func (c Config) CheckFiles(path string, add func(path, format string, args ...any)) {
	if !c.On() || len(c.Problems(path)) > 0 {
		return
	}
	for _, f := range []string{c.CAFile, c.CertFile, c.KeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.ReadFile(f); err != nil {
			return
		}
	}
	if _, err := c.Build(); err != nil {
		add(path, "%s", strings.TrimPrefix(err.Error(), "tls."))
	}
}
