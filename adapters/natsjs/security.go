package natsjs

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/nats-io/nats.go"

	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/tlsconfig"
	"github.com/emitd/emitd/configs/redact"
)

// Security settings of Config (one way to authenticate at most):
//
//   - CredsFile: a .creds file (user JWT and nkey seed, as `nsc` writes it)
//     for servers in operator mode (Synadia Cloud, NGS, nsc-managed);
//   - NkeySeedFile: a file holding a user nkey seed (SU...), for servers
//     that list nkey users;
//   - User and Password; or Token. Given apart from the URL, they replace
//     any user:password@ or token@ in it.
//
// TLS is on when the URL's scheme is tls:// or any field of TLS is set:
// NATS announces TLS in its INFO line before any handshake, so nats.go
// upgrades a nats:// URL to TLS on its own when the server requires it, with
// the system's roots unless TLS.CAFile says otherwise.

// Problems are the static mistakes in c's security settings (no file is
// read), each naming its field under path (e.g. "brokers.nats").
func (c Config) Problems(path string) []string {
	out := c.TLS.Problems(path + ".tls")
	var ways []string
	for _, w := range []struct {
		set  bool
		name string
	}{
		{c.CredsFile != "", "credsFile"},
		{c.NkeySeedFile != "", "nkeySeedFile"},
		{c.User != "" || c.Password != "", "user/password"},
		{c.Token != "", "token"},
	} {
		if w.set {
			ways = append(ways, path+"."+w.name)
		}
	}
	if len(ways) > 1 {
		out = append(out, ways[0]+" is set together with "+strings.Join(ways[1:], " and ")+": a NATS connection authenticates one way; keep one")
	}
	if c.Password != "" && c.User == "" {
		out = append(out, path+".password is set without "+path+".user")
	}
	return out
}

// securityOptions are the nats.Options of c's security settings; file
// errors name the field.
func (c Config) securityOptions() ([]nats.Option, error) {
	if p := c.Problems("brokers.nats"); len(p) > 0 {
		return nil, errors.New(p[0])
	}
	for _, p := range servers(c.URL) {
		if _, err := url.Parse(p); err != nil {
			// net/url's errors quote the whole URL, or pieces of it that
			// may be pieces of a password or token: none of it is shown.
			return nil, fmt.Errorf("brokers.nats.url: invalid URL: %w", redact.ParseError(err))
		}
	}
	var opts []nats.Option
	switch {
	case c.CredsFile != "":
		if err := readable(c.CredsFile); err != nil {
			return nil, fmt.Errorf("brokers.nats.credsFile: %w", err)
		}
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NkeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NkeySeedFile)
		if err != nil {
			// nats.go's message names the file, never the seed.
			return nil, fmt.Errorf("brokers.nats.nkeySeedFile: %w", err)
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	if c.TLS.On() {
		tc, err := c.TLS.Build()
		if err != nil {
			return nil, fmt.Errorf("brokers.nats.%w", err)
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// readable checks the creds file up front: nats.UserCredentials reads it
// only while connecting, where an unreadable file would look like a failed
// login. (config validate checks it too; this is for callers of the
// adapter without a configuration.)
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// connectURL is c.URL with its user information removed when the
// credentials are given apart (they replace it: nats.go would prefer the
// URL's).
func (c Config) connectURL() string {
	if c.User == "" && c.Token == "" && c.CredsFile == "" && c.NkeySeedFile == "" {
		return c.URL
	}
	parts := servers(c.URL)
	for i, p := range parts {
		if u, err := url.Parse(p); err == nil && u.User != nil {
			u.User = nil
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// servers are the entries of a server list as nats.go reads them: trimmed,
// and nats:// where an entry has no scheme ("nats://a:4222, b:4222").
func servers(list string) []string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "://") {
			p = "nats://" + p
		}
		parts[i] = p
	}
	return parts
}

// addresses are the servers of c.URL as host:port, without any user
// information: what errors name.
func (c Config) addresses() string {
	var out []string
	for _, p := range servers(c.URL) {
		u, err := url.Parse(p)
		if err != nil {
			out = append(out, "(unparsable URL)")
			continue
		}
		out = append(out, u.Host)
	}
	return strings.Join(out, ", ")
}

// login is how an error names the credentials: the kind and the user or
// file, never a password, token or seed.
func (c Config) login() string {
	switch {
	case c.CredsFile != "":
		return fmt.Sprintf("creds file %s", c.CredsFile)
	case c.NkeySeedFile != "":
		return fmt.Sprintf("nkey seed file %s", c.NkeySeedFile)
	case c.User != "":
		return fmt.Sprintf("user %q", c.User)
	case c.Token != "":
		return "token"
	}
	if u, err := url.Parse(strings.TrimSpace(strings.Split(c.URL, ",")[0])); err == nil && u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			return fmt.Sprintf("user %q of the URL", u.User.Username())
		}
		return "token of the URL"
	}
	return ""
}

// ConnectError is a failure to reach, secure or log in to the broker:
// broker.ConnectError, with Broker "nats".
type ConnectError = broker.ConnectError

// connectError classifies a nats.Connect failure by nats.go's sentinel
// errors and the TLS error types.
func (c Config) connectError(err error) error {
	e := &ConnectError{Broker: "nats", Address: c.addresses(), Step: "connect", Err: err}
	login := c.login()
	auth := func(reason string) {
		e.Step, e.Login, e.Reason = "authentication", login, reason
		if login == "" {
			e.Login = "no credentials"
		}
	}
	closed := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
	// A certificate error is TLS whatever the URL said (nats.go also
	// upgrades when the server asks for TLS), but a timeout is a TLS
	// handshake only on a connection set up for TLS: on a plain one it is a
	// server that does not answer.
	tlsOn := c.TLS.On() || strings.Contains(strings.ToLower(c.URL), "tls://")
	var nerr net.Error
	timeout := errors.As(err, &nerr) && nerr.Timeout()
	switch {
	case !closed && tlsconfig.Explain(err) != "" && (tlsOn || !timeout):
		e.Step, e.Reason = "TLS handshake", tlsconfig.Explain(err)
	case errors.Is(err, nats.ErrTLS):
		// nats.go's mark for a connection closed right after a completed
		// handshake (read EOF, or a broken pipe on the first write, by
		// timing): the server took the handshake and then refused us.
		e.Step, e.Reason = "TLS handshake", "the server closed the connection right after the TLS handshake: this points to a client certificate it refused or wanted (tls.certFile, tls.keyFile)"
	case errors.Is(err, nats.ErrSecureConnWanted):
		e.Step, e.Reason = "TLS handshake", "the server does not offer TLS: use its TLS listener, or turn TLS off (nats:// URL, no tls settings)"
	case errors.Is(err, nats.ErrSecureConnRequired):
		e.Step, e.Reason = "TLS handshake", "the server requires TLS: use a tls:// URL or set tls"
	case errors.Is(err, nats.ErrAuthorization):
		if login == "" {
			auth("the server requires credentials: set credsFile, nkeySeedFile, user and password, or token")
		} else {
			auth("the server refused the credentials")
		}
	case errors.Is(err, nats.ErrAuthExpired):
		auth("the credentials have expired (the user JWT of the creds file?)")
	case errors.Is(err, nats.ErrAuthRevoked):
		auth("the credentials have been revoked")
	case errors.Is(err, nats.ErrAccountAuthExpired):
		auth("the account's JWT has expired")
	case closed:
		e.Reason = "the server closed the connection while connecting: this points to the TLS handshake or the login"
	case errors.Is(err, nats.ErrNoServers):
		e.Reason = "no server answers at this address"
	}
	return e
}
