package tlsconfig_test

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emitd/emitd/adapters/tlsconfig"
	"github.com/emitd/emitd/adapters/tlsconfig/tlstest"
)

func TestOnAndProblems(t *testing.T) {
	if (tlsconfig.Config{}).On() {
		t.Fatal("empty section is on")
	}
	if !(tlsconfig.Config{CAFile: "ca.pem"}).On() {
		t.Fatal("a CA file does not turn TLS on")
	}
	p := tlsconfig.Config{CertFile: "c.pem"}.Problems("brokers.nats.tls")
	if len(p) != 1 || !strings.Contains(p[0], "brokers.nats.tls.keyFile") {
		t.Fatalf("problems = %q", p)
	}
	if p := (tlsconfig.Config{CertFile: "c", KeyFile: "k"}).Problems("x"); len(p) != 0 {
		t.Fatalf("problems of a good section = %q", p)
	}
}

func TestBuildErrorsNameTheField(t *testing.T) {
	pki := tlstest.New(t)
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		cfg  tlsconfig.Config
		want string
	}{
		"missing CA":     {tlsconfig.Config{CAFile: "/nonexistent/ca.pem"}, "tls.caFile: open /nonexistent/ca.pem"},
		"CA not PEM":     {tlsconfig.Config{CAFile: notPEM}, "tls.caFile: no certificate found in " + notPEM},
		"missing key":    {tlsconfig.Config{CertFile: pki.ClientCertFile, KeyFile: "/nonexistent/k.pem"}, "tls.keyFile: stat /nonexistent/k.pem"},
		"key mismatched": {tlsconfig.Config{CertFile: pki.ClientCertFile, KeyFile: pki.ServerKeyFile}, "tls.certFile " + pki.ClientCertFile},
		"cert alone":     {tlsconfig.Config{CertFile: pki.ClientCertFile}, "tls.certFile is set but tls.keyFile is not"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tc.cfg.Build()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Build() error = %v, want prefix %q", err, tc.want)
			}
		})
	}
	tc, err := tlsconfig.Config{CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile}.Build()
	if err != nil || tc.RootCAs == nil || len(tc.Certificates) != 1 {
		t.Fatalf("Build() = %+v, %v", tc, err)
	}
	if tc, err := (tlsconfig.Config{}).Build(); tc != nil || err != nil {
		t.Fatalf("Build() of an empty section = %v, %v; want nil, nil", tc, err)
	}
}

// serve accepts connections on a loopback port and handshakes each with
// srv (or, with srv nil, answers in plain text like a non-TLS broker).
func serve(t *testing.T, srv *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if srv == nil {
					c.Write([]byte("AMQP\x00\x00\x09\x01 plain text, not TLS"))
					return
				}
				tc := tls.Server(c, srv)
				if tc.Handshake() == nil {
					tc.Write([]byte("ok"))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dial handshakes as a client and reads once: with TLS 1.3 the server's
// refusal of a client certificate arrives after the client's handshake.
func dial(addr string, cfg tlsconfig.Config) error {
	tc, err := cfg.Build()
	if err != nil {
		return err
	}
	c, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Read(make([]byte, 2))
	return err
}

func TestExplainHandshakeFailures(t *testing.T) {
	pki := tlstest.New(t)
	other := tlstest.New(t)
	expired := tlstest.NewWith(t, tlstest.Options{Expired: true})
	onlyName := tlstest.NewWith(t, tlstest.Options{ServerNames: []string{"kafka.example.com"}})

	for name, tc := range map[string]struct {
		addr string
		cfg  tlsconfig.Config
		want string
	}{
		"unknown CA":       {serve(t, pki.ServerConfig(false)), tlsconfig.Config{CAFile: other.CAFile}, "unknown authority: set tls.caFile"},
		"system roots":     {serve(t, pki.ServerConfig(false)), tlsconfig.Config{Enabled: true}, "unknown authority"},
		"wrong name":       {serve(t, onlyName.ServerConfig(false)), tlsconfig.Config{CAFile: onlyName.CAFile}, `not valid for "127.0.0.1" (it names kafka.example.com)`},
		"expired":          {serve(t, expired.ServerConfig(false)), tlsconfig.Config{CAFile: expired.CAFile}, "has expired"},
		"plain text":       {serve(t, nil), tlsconfig.Config{CAFile: pki.CAFile}, "does not speak TLS"},
		"no client cert":   {serve(t, pki.ServerConfig(true)), tlsconfig.Config{CAFile: pki.CAFile}, "requires a client certificate"},
		"foreign cli cert": {serve(t, pki.ServerConfig(true)), tlsconfig.Config{CAFile: pki.CAFile, CertFile: other.ClientCertFile, KeyFile: other.ClientKeyFile}, "refused the client certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			err := dial(tc.addr, tc.cfg)
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			if got := tlsconfig.Explain(err); !strings.Contains(got, tc.want) {
				t.Fatalf("Explain(%v) = %q, want it to contain %q", err, got, tc.want)
			}
		})
	}

	t.Run("good", func(t *testing.T) {
		addr := serve(t, pki.ServerConfig(true))
		err := dial(addr, tlsconfig.Config{CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile})
		if err != nil {
			t.Fatalf("mutual TLS: %v", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		err = dial(ln.Addr().String(), tlsconfig.Config{CAFile: pki.CAFile})
		if got := tlsconfig.Explain(err); !strings.Contains(got, "closed during the TLS handshake") {
			t.Fatalf("Explain(%v) = %q", err, got)
		}
	})
	if got := tlsconfig.Explain(&net.OpError{Op: "dial", Err: os.ErrNotExist}); got != "" {
		t.Fatalf("Explain of a non-TLS error = %q", got)
	}
}
