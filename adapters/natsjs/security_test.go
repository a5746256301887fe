package natsjs_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/emitd/emitd/adapters/contract"
	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/adapters/natsjs/natstest"
	"github.com/emitd/emitd/adapters/tlsconfig"
	"github.com/emitd/emitd/adapters/tlsconfig/tlstest"
)

// Known secrets: every error is searched for them.
const (
	natsPassword = "nats-s3cret-Pw"
	natsToken    = "nats-t0ken-s3cret"
)

// roundTrip publishes one message through natsjs and receives it with a
// group subscriber of the same configuration.
func roundTrip(t *testing.T, cfg natsjs.Config) {
	t.Helper()
	topic := "secure." + uuid.NewString()[:8]
	cfg.StreamPrefix, cfg.DeliverAll, cfg.MemoryStorage, cfg.Topics = "SEC_", true, true, []string{topic}
	pub, err := natsjs.NewPublisher(cfg)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	sub, err := natsjs.NewSubscriber(cfg, "g")
	if err != nil {
		pub.Close()
		t.Fatalf("NewSubscriber: %v", err)
	}
	contract.RoundTrip(t, pub, sub, topic)
}

// connectErr connects with cfg, which must fail, and checks the error's
// shape: a *natsjs.ConnectError naming nats and the address, never a
// secret.
func connectErr(t *testing.T, cfg natsjs.Config, addr string) (*natsjs.ConnectError, error) {
	t.Helper()
	_, err := natsjs.NewPublisher(cfg)
	if err == nil {
		t.Fatal("NewPublisher succeeded")
	}
	t.Log(err)
	var ce *natsjs.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *natsjs.ConnectError", err, err)
	}
	if !strings.HasPrefix(err.Error(), "nats "+addr+": ") {
		t.Errorf("error does not start with %q: %v", "nats "+addr+": ", err)
	}
	for _, secret := range []string{natsPassword, natsToken, "wrong-Pw", "wrong-t0ken", "SU"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error carries a secret (%q): %v", secret, err)
		}
	}
	return ce, err
}

func want(t *testing.T, err error, s string) {
	t.Helper()
	if !strings.Contains(err.Error(), s) {
		t.Errorf("error = %v\nwant it to contain %q", err, s)
	}
}

func TestUserPassword(t *testing.T) {
	addr := natstest.StartServer(t, func(o *server.Options) { o.Username, o.Password = "emitd", natsPassword })
	roundTrip(t, natsjs.Config{URL: "nats://" + addr, User: "emitd", Password: natsPassword})

	t.Run("in the URL", func(t *testing.T) {
		roundTrip(t, natsjs.Config{URL: "nats://emitd:" + natsPassword + "@" + addr})
	})
	t.Run("wrong password", func(t *testing.T) {
		ce, err := connectErr(t, natsjs.Config{URL: "nats://" + addr, User: "emitd", Password: "wrong-Pw"}, addr)
		if !errors.Is(err, nats.ErrAuthorization) || ce.Step != "authentication" {
			t.Errorf("step %q, err %v: want authentication, nats.ErrAuthorization", ce.Step, err)
		}
		want(t, err, `authentication (user "emitd") failed: the server refused the credentials`)
	})
	t.Run("wrong password in the URL", func(t *testing.T) {
		_, err := connectErr(t, natsjs.Config{URL: "nats://emitd:wrong-Pw@" + addr}, addr)
		want(t, err, `authentication (user "emitd" of the URL) failed`)
	})
	t.Run("the fields replace the URL's", func(t *testing.T) {
		roundTrip(t, natsjs.Config{URL: "nats://emitd:wrong-Pw@" + addr, User: "emitd", Password: natsPassword})
	})
	t.Run("a server list with an entry without scheme", func(t *testing.T) {
		// nats.go reads "host:port" as nats://host:port; so must emitd.
		roundTrip(t, natsjs.Config{URL: "nats://" + addr + ", " + addr, User: "emitd", Password: natsPassword})
	})
	t.Run("none", func(t *testing.T) {
		_, err := connectErr(t, natsjs.Config{URL: "nats://" + addr}, addr)
		want(t, err, "authentication (no credentials) failed: the server requires credentials")
	})
}

func TestToken(t *testing.T) {
	addr := natstest.StartServer(t, func(o *server.Options) { o.Authorization = natsToken })
	roundTrip(t, natsjs.Config{URL: "nats://" + addr, Token: natsToken})
	_, err := connectErr(t, natsjs.Config{URL: "nats://" + addr, Token: "wrong-t0ken"}, addr)
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("not nats.ErrAuthorization: %v", err)
	}
	want(t, err, "authentication (token) failed: the server refused the credentials")
}

func TestNkey(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	file := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(file, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := natstest.StartServer(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	roundTrip(t, natsjs.Config{URL: "nats://" + addr, NkeySeedFile: file})

	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	otherFile := filepath.Join(t.TempDir(), "other.nk")
	if err := os.WriteFile(otherFile, otherSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := connectErr(t, natsjs.Config{URL: "nats://" + addr, NkeySeedFile: otherFile}, addr)
	want(t, err, "authentication (nkey seed file "+otherFile+") failed: the server refused the credentials")

	_, err = natsjs.NewPublisher(natsjs.Config{URL: "nats://" + addr, NkeySeedFile: filepath.Join(t.TempDir(), "missing.nk")})
	if err == nil || !strings.HasPrefix(err.Error(), "brokers.nats.nkeySeedFile: ") {
		t.Errorf("missing seed file: %v", err)
	}
}

func TestCredsFile(t *testing.T) {
	op := natstest.NewOperator(t)
	_, akp := op.Account(t, true)
	addr := natstest.StartServer(t, op.Trust)
	roundTrip(t, natsjs.Config{URL: "nats://" + addr, CredsFile: natstest.Creds(t, akp, time.Time{})})

	t.Run("unknown account", func(t *testing.T) {
		stranger, _ := nkeys.CreateAccount()
		file := natstest.Creds(t, stranger, time.Time{})
		_, err := connectErr(t, natsjs.Config{URL: "nats://" + addr, CredsFile: file}, addr)
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("not nats.ErrAuthorization: %v", err)
		}
		want(t, err, "authentication (creds file "+file+") failed: the server refused the credentials")
	})
	t.Run("expired", func(t *testing.T) {
		file := natstest.Creds(t, akp, time.Now().Add(-time.Minute))
		_, err := connectErr(t, natsjs.Config{URL: "nats://" + addr, CredsFile: file}, addr)
		want(t, err, "authentication (creds file "+file+") failed")
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := natsjs.NewPublisher(natsjs.Config{URL: "nats://" + addr, CredsFile: "/nonexistent/emitd.creds"})
		if err == nil || !strings.HasPrefix(err.Error(), "brokers.nats.credsFile: open /nonexistent/emitd.creds") {
			t.Errorf("missing creds file: %v", err)
		}
	})
}

func TestTLS(t *testing.T) {
	pki := tlstest.New(t)
	addr := natstest.StartServer(t, func(o *server.Options) {
		o.TLSConfig, o.TLS, o.TLSTimeout = pki.ServerConfig(false), true, 5
		o.Username, o.Password = "emitd", natsPassword
	})
	roundTrip(t, natsjs.Config{URL: "tls://" + addr, TLS: tlsconfig.Config{CAFile: pki.CAFile}, User: "emitd", Password: natsPassword})
	// nats:// is upgraded: the server announces TLS before any handshake.
	roundTrip(t, natsjs.Config{URL: "nats://" + addr, TLS: tlsconfig.Config{CAFile: pki.CAFile}, User: "emitd", Password: natsPassword})

	t.Run("unknown CA", func(t *testing.T) {
		ce, err := connectErr(t, natsjs.Config{URL: "tls://" + addr, TLS: tlsconfig.Config{CAFile: tlstest.New(t).CAFile}, User: "emitd", Password: natsPassword}, addr)
		if ce.Step != "TLS handshake" {
			t.Errorf("step %q", ce.Step)
		}
		want(t, err, "TLS handshake failed: the server's certificate is signed by an unknown authority: set tls.caFile")
	})
	t.Run("system roots", func(t *testing.T) {
		_, err := connectErr(t, natsjs.Config{URL: "tls://" + addr, User: "emitd", Password: natsPassword}, addr)
		want(t, err, "TLS handshake failed: the server's certificate is signed by an unknown authority")
	})
	t.Run("wrong server name", func(t *testing.T) {
		_, err := connectErr(t, natsjs.Config{URL: "tls://" + addr, TLS: tlsconfig.Config{CAFile: pki.CAFile, ServerName: "nats.example.com"}, User: "emitd", Password: natsPassword}, addr)
		want(t, err, `TLS handshake failed: the server's certificate is not valid for "nats.example.com"`)
	})
	t.Run("wrong password over TLS", func(t *testing.T) {
		_, err := connectErr(t, natsjs.Config{URL: "tls://emitd:wrong-Pw@" + addr, TLS: tlsconfig.Config{CAFile: pki.CAFile}}, addr)
		want(t, err, "authentication (user \"emitd\" of the URL) failed: the server refused the credentials")
	})
	t.Run("server without TLS", func(t *testing.T) {
		plain := natstest.StartServer(t, nil)
		_, err := connectErr(t, natsjs.Config{URL: "tls://" + plain, TLS: tlsconfig.Config{CAFile: pki.CAFile}}, plain)
		if !errors.Is(err, nats.ErrSecureConnWanted) {
			t.Errorf("not nats.ErrSecureConnWanted: %v", err)
		}
		want(t, err, "TLS handshake failed: the server does not offer TLS")
	})
}

func TestMutualTLS(t *testing.T) {
	pki := tlstest.New(t)
	addr := natstest.StartServer(t, func(o *server.Options) {
		o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = pki.ServerConfig(true), true, true, 5
	})
	roundTrip(t, natsjs.Config{URL: "tls://" + addr, TLS: tlsconfig.Config{CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile}})
	_, err := connectErr(t, natsjs.Config{URL: "tls://" + addr, TLS: tlsconfig.Config{CAFile: pki.CAFile}}, addr)
	want(t, err, "TLS handshake failed: ")
}

func TestBadURLHidesItsSecrets(t *testing.T) {
	_, err := natsjs.NewPublisher(natsjs.Config{URL: "nats://emitd:" + natsPassword + "@host:x"})
	if err == nil || !strings.HasPrefix(err.Error(), "brokers.nats.url: invalid URL: ") || strings.Contains(err.Error(), natsPassword) {
		t.Errorf("bad URL: %v", err)
	}
}

func TestSecurityProblems(t *testing.T) {
	p := natsjs.Config{CredsFile: "a.creds", Token: "x"}.Problems("brokers.nats")
	if len(p) != 1 || !strings.Contains(p[0], "brokers.nats.credsFile is set together with brokers.nats.token") {
		t.Errorf("Problems = %q", p)
	}
	if p := (natsjs.Config{Password: "x"}).Problems("brokers.nats"); len(p) != 1 || !strings.Contains(p[0], "brokers.nats.password is set without brokers.nats.user") {
		t.Errorf("Problems = %q", p)
	}
	if p := (natsjs.Config{User: "u", Password: "p", TLS: tlsconfig.Config{CAFile: "ca.pem"}}).Problems("brokers.nats"); len(p) != 0 {
		t.Errorf("Problems of a good section = %q", p)
	}
}
