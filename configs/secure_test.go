package configs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emitd/emitd/adapters/amqp"
	"github.com/emitd/emitd/adapters/kafka"
	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/adapters/tlsconfig/tlstest"
	"github.com/emitd/emitd/configs"
)

// The secure settings of each broker are read, checked with their field
// paths, and redacted; see the adapters' security tests for what they do
// on the wire.
func TestSecureSettingsAreChecked(t *testing.T) {
	pki := tlstest.New(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not-a-ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)
	missing := filepath.Join(dir, "missing.pem")
	const kafkaAt = "    brokers: [127.0.0.1:9092]     # bootstrap host:port list\n"
	const natsAt = "    url: nats://127.0.0.1:4222    # the NATS server (JetStream on)\n"
	const amqpAt = "    exchange: emitd               # durable topic exchange everything goes to\n"
	cases := []struct {
		name, file, at, add string
		path, says          string
	}{
		{"unknown SASL mechanism", "kafka.yaml", kafkaAt, "    sasl: {mechanism: GSSAPI, username: u, password: p}\n",
			"brokers.kafka.sasl.mechanism", "want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM"},
		{"SCRAM without a password", "kafka.yaml", kafkaAt, "    sasl: {mechanism: SCRAM-SHA-512, username: u}\n",
			"brokers.kafka.sasl.password", "required with mechanism SCRAM-SHA-512"},
		{"MSK IAM without TLS", "kafka.yaml", kafkaAt, "    sasl: {mechanism: AWS_MSK_IAM}\n",
			"brokers.kafka.sasl.mechanism", "needs TLS"},
		{"a CA file that holds no certificate", "kafka.yaml", kafkaAt, "    tls: {caFile: " + notPEM + "}\n",
			"brokers.kafka.tls", "caFile: no certificate found in " + notPEM},
		{"a missing CA file", "kafka.yaml", kafkaAt, "    tls: {caFile: " + missing + "}\n",
			"brokers.kafka.tls.caFile", "cannot read " + missing},
		{"a certificate without its key", "kafka.yaml", kafkaAt, "    tls: {certFile: " + pki.ClientCertFile + "}\n",
			"brokers.kafka.tls.certFile", "keyFile is not"},
		{"a missing password file", "kafka.yaml", kafkaAt, "    sasl: {mechanism: PLAIN, username: u, passwordFile: " + missing + "}\n",
			"brokers.kafka.sasl.passwordFile", "cannot read " + missing},
		{"two ways to log in to NATS", "nats.yaml", natsAt, "    token: t\n    user: u\n    password: p\n",
			"brokers.nats.user/password", "is set together with brokers.nats.token: a NATS connection authenticates one way"},
		{"a missing creds file", "nats.yaml", natsAt, "    credsFile: " + missing + "\n",
			"brokers.nats.credsFile", "cannot read " + missing},
		{"a NATS key that is not its certificate's", "nats.yaml", natsAt,
			"    tls: {certFile: " + pki.ClientCertFile + ", keyFile: " + pki.ServerKeyFile + "}\n",
			"brokers.nats.tls", "certFile"},
		{"TLS on an amqp:// URL", "amqp.yaml", amqpAt, "    tls: {caFile: " + pki.CAFile + "}\n",
			"brokers.amqp.tls", "amqps://"},
		{"an AMQP password without a user", "amqp.yaml", amqpAt, "    password: p\n",
			"brokers.amqp.password", "without brokers.amqp.user"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := problems(t, c.file, c.at, c.at+c.add)
			for _, p := range got {
				if strings.HasPrefix(p, c.path+": ") && strings.Contains(p, c.says) {
					return
				}
			}
			t.Errorf("no problem %q containing %q in\n  %s", c.path+": ", c.says, strings.Join(got, "\n  "))
		})
	}
}

// A complete secure section loads: the files are read, the twins fill the
// secrets, and config show prints none of them.
func TestSecureSectionsLoadAndRedact(t *testing.T) {
	pki := tlstest.New(t)
	pw := filepath.Join(t.TempDir(), "kafka-password")
	os.WriteFile(pw, []byte("kafka-s3cret\n"), 0o600)
	t.Setenv("EMITD_TEST_AMQP_PASSWORD", "amqp-s3cret")
	load := func(file, at, add string) *configs.Config {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := configs.Parse([]byte(strings.Replace(string(b), at, at+add, 1)))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return cfg
	}
	k := load("kafka.yaml", "    brokers: [127.0.0.1:9092]     # bootstrap host:port list\n",
		"    tls: {caFile: "+pki.CAFile+", serverName: kafka.internal}\n    sasl: {mechanism: SCRAM-SHA-256, username: emitd, passwordFile: "+pw+"}\n")
	if s := kafka.SectionOf(k); s.SASL.Password != "kafka-s3cret" || s.TLS.CAFile != pki.CAFile || s.TLS.ServerName != "kafka.internal" {
		t.Errorf("kafka section: %+v", s)
	}
	a := load("amqp.yaml", "    exchange: emitd               # durable topic exchange everything goes to\n",
		"    user: emitd\n    password: ${EMITD_TEST_AMQP_PASSWORD}\n")
	if s := amqp.SectionOf(a); s.User != "emitd" || s.Password != "amqp-s3cret" {
		t.Errorf("amqp section: %+v", s)
	}
	n := load("nats.yaml", "    url: nats://127.0.0.1:4222    # the NATS server (JetStream on)\n", "    token: nats-s3cret\n")
	if natsjs.NATSSectionOf(n).Token != "nats-s3cret" {
		t.Errorf("nats token not read")
	}
	for _, cfg := range []*configs.Config{k, a, n} {
		out, err := configs.ShowYAML(configs.Redacted(cfg))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"kafka-s3cret", "amqp-s3cret", "nats-s3cret"} {
			if strings.Contains(string(out), secret) {
				t.Errorf("config show prints a secret:\n%s", out)
			}
		}
		if !strings.Contains(string(out), "<redacted>") {
			t.Errorf("config show marks no secret as redacted:\n%s", out)
		}
	}
}
