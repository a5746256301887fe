package amqp_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/emitd/emitd/adapters/amqp"
	"github.com/emitd/emitd/adapters/contract"
	"github.com/emitd/emitd/adapters/tlsconfig"
	"github.com/emitd/emitd/adapters/tlsconfig/tlstest"
)

const wrongPassword = "wrong-amqp-Pw"

// tlsProxy puts TLS (srv) in front of the machine's RabbitMQ.
func tlsProxy(t *testing.T, srv *tls.Config) string {
	return tlstest.Proxy(t, srv, "127.0.0.1:5672")
}

func secureRoundTrip(t *testing.T, cfg amqp.Config) {
	t.Helper()
	topic := "secure." + uuid.NewString()[:8]
	pub, err := amqp.NewPublisher(cfg)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	sub, err := amqp.NewSubscriber(cfg, "")
	if err != nil {
		pub.Close()
		t.Fatalf("NewSubscriber: %v", err)
	}
	contract.RoundTrip(t, pub, sub, topic)
}

func connectFails(t *testing.T, cfg amqp.Config, addr string) (*amqp.ConnectError, error) {
	t.Helper()
	_, err := amqp.NewPublisher(cfg)
	if err == nil {
		t.Fatal("NewPublisher succeeded")
	}
	t.Log(err)
	var ce *amqp.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not an *amqp.ConnectError", err, err)
	}
	if !strings.HasPrefix(err.Error(), "amqp "+addr+": ") {
		t.Errorf("error does not start with %q: %v", "amqp "+addr+": ", err)
	}
	if strings.Contains(err.Error(), wrongPassword) || strings.Contains(err.Error(), "guest:guest") {
		t.Errorf("error carries the password or the URL: %v", err)
	}
	return ce, err
}

func must(t *testing.T, err error, s string) {
	t.Helper()
	if !strings.Contains(err.Error(), s) {
		t.Errorf("error = %v\nwant it to contain %q", err, s)
	}
}

func TestAMQPS(t *testing.T) {
	machineBroker(t)
	pki := tlstest.New(t)
	addr := tlsProxy(t, pki.ServerConfig(false))

	secureRoundTrip(t, amqp.Config{URL: "amqps://guest:guest@" + addr + "/", TLS: tlsconfig.Config{CAFile: pki.CAFile}})

	t.Run("user and password apart from the URL", func(t *testing.T) {
		// The URL's (wrong) user information is replaced.
		secureRoundTrip(t, amqp.Config{URL: "amqps://nobody:" + wrongPassword + "@" + addr + "/",
			TLS: tlsconfig.Config{CAFile: pki.CAFile}, User: "guest", Password: "guest"})
	})
	t.Run("wrong password", func(t *testing.T) {
		ce, err := connectFails(t, amqp.Config{URL: "amqps://" + addr + "/", TLS: tlsconfig.Config{CAFile: pki.CAFile},
			User: "guest", Password: wrongPassword}, addr)
		var aerr *amqp091.Error
		if !errors.As(err, &aerr) || aerr.Code != amqp091.AccessRefused {
			t.Errorf("not an amqp091 403: %v", err)
		}
		if ce.Step != "authentication" || ce.Login != `user "guest"` {
			t.Errorf("step %q, login %q", ce.Step, ce.Login)
		}
		must(t, err, `amqp `+addr+`: authentication (user "guest") failed: the broker refused the user name or password`)
	})
	t.Run("wrong password in the URL", func(t *testing.T) {
		_, err := connectFails(t, amqp.Config{URL: "amqps://guest:" + wrongPassword + "@" + addr + "/", TLS: tlsconfig.Config{CAFile: pki.CAFile}}, addr)
		must(t, err, `authentication (user "guest") failed`)
	})
	t.Run("unknown CA", func(t *testing.T) {
		ce, err := connectFails(t, amqp.Config{URL: "amqps://guest:guest@" + addr + "/", TLS: tlsconfig.Config{CAFile: tlstest.New(t).CAFile}}, addr)
		if ce.Step != "TLS handshake" {
			t.Errorf("step %q", ce.Step)
		}
		must(t, err, "TLS handshake failed: the server's certificate is signed by an unknown authority: set tls.caFile")
	})
	t.Run("wrong server name", func(t *testing.T) {
		_, err := connectFails(t, amqp.Config{URL: "amqps://guest:guest@" + addr + "/", TLS: tlsconfig.Config{CAFile: pki.CAFile, ServerName: "rabbit.example.com"}}, addr)
		must(t, err, `TLS handshake failed: the server's certificate is not valid for "rabbit.example.com"`)
	})
	t.Run("plain-text port", func(t *testing.T) {
		_, err := connectFails(t, amqp.Config{URL: "amqps://guest:guest@127.0.0.1:5672/", TLS: tlsconfig.Config{CAFile: pki.CAFile}}, "127.0.0.1:5672")
		must(t, err, "TLS handshake failed: the server does not speak TLS")
	})
	t.Run("TLS port without TLS", func(t *testing.T) {
		_, err := connectFails(t, amqp.Config{URL: "amqp://guest:guest@" + addr + "/"}, addr)
		must(t, err, "amqp "+addr+": connect failed: ")
	})
	t.Run("unknown vhost", func(t *testing.T) {
		_, err := connectFails(t, amqp.Config{URL: "amqps://guest:guest@" + addr + "/no-such-vhost", TLS: tlsconfig.Config{CAFile: pki.CAFile}}, addr)
		must(t, err, `open vhost "no-such-vhost" (user "guest") failed`)
	})
}

func TestAMQPSMutualTLS(t *testing.T) {
	machineBroker(t)
	pki := tlstest.New(t)
	addr := tlsProxy(t, pki.ServerConfig(true))
	secureRoundTrip(t, amqp.Config{URL: "amqps://guest:guest@" + addr + "/",
		TLS: tlsconfig.Config{CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile}})
	_, err := connectFails(t, amqp.Config{URL: "amqps://guest:guest@" + addr + "/", TLS: tlsconfig.Config{CAFile: pki.CAFile}}, addr)
	must(t, err, "TLS handshake failed: the server requires a client certificate: set tls.certFile and tls.keyFile")
}

func TestSecurityProblems(t *testing.T) {
	p := amqp.Config{URL: "amqp://h/", TLS: tlsconfig.Config{CAFile: "ca.pem"}}.Problems("brokers.amqp")
	if len(p) != 1 || !strings.Contains(p[0], "brokers.amqp.tls is set but brokers.amqp.url is not amqps://") {
		t.Errorf("Problems = %q", p)
	}
	if p := (amqp.Config{URL: "amqps://h/", Password: "x"}).Problems("brokers.amqp"); len(p) != 1 || !strings.Contains(p[0], "brokers.amqp.password is set without brokers.amqp.user") {
		t.Errorf("Problems = %q", p)
	}
	_, err := amqp.NewPublisher(amqp.Config{URL: "amqp://guest:" + wrongPassword + "@host:x/"})
	if err == nil || !strings.HasPrefix(err.Error(), "brokers.amqp.url: invalid URL: ") || strings.Contains(err.Error(), wrongPassword) {
		t.Errorf("bad URL: %v", err)
	}
	_, err = amqp.NewPublisher(amqp.Config{URL: "amqps://h/", TLS: tlsconfig.Config{CAFile: "/nonexistent/ca.pem"}})
	if err == nil || !strings.HasPrefix(err.Error(), "brokers.amqp.tls.caFile: open /nonexistent/ca.pem") {
		t.Errorf("missing CA file: %v", err)
	}
}
