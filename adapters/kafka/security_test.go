package kafka_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Shopify/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/emitd/emitd/adapters/kafka"
	"github.com/emitd/emitd/adapters/kafka/kafkatest"
	"github.com/emitd/emitd/adapters/tlsconfig"
	"github.com/emitd/emitd/adapters/tlsconfig/tlstest"
)

// Known secrets: every error is searched for them.
var users = map[string]struct{ user, pass string }{
	kafka.MechanismPlain:       {"emitd", "plain-s3cret-Pw"},
	kafka.MechanismSCRAMSHA256: {"emitd", "scram256-s3cret-Pw"},
	kafka.MechanismSCRAMSHA512: {"emitd", "scram512-s3cret-Pw"},
}

// secureCluster is a kfake cluster that speaks only TLS (certificate of
// pki) and wants a SASL login, with one user per mechanism.
func secureCluster(t *testing.T, pki *tlstest.PKI) []string {
	t.Helper()
	var logins []kafkatest.Login
	for mech, u := range users {
		logins = append(logins, kafkatest.Login{Mechanism: mech, User: u.user, Password: u.pass})
	}
	return kafkatest.StartSecure(t, pki, logins...)
}

func secureConfig(brokers []string, pki *tlstest.PKI, mech, pass string) kafka.Config {
	return kafka.Config{
		Brokers: brokers,
		TLS:     tlsconfig.Config{CAFile: pki.CAFile},
		SASL:    kafka.SASL{Mechanism: mech, Username: users[mech].user, Password: pass},
	}
}

func TestTLSAndSASLRoundTrip(t *testing.T) {
	pki := tlstest.New(t)
	brokers := secureCluster(t, pki)
	for mech, u := range users {
		t.Run(mech, func(t *testing.T) {
			cfg := secureConfig(brokers, pki, mech, u.pass)
			topic := "secure." + watermill.NewShortUUID()

			// The admin client shares the configuration: it creates the topic.
			admin, err := cfg.NewClusterAdmin()
			if err != nil {
				t.Fatalf("admin: %v", err)
			}
			defer admin.Close()
			if err := admin.CreateTopic(topic, &saramaTopic, false); err != nil {
				t.Fatalf("create topic: %v", err)
			}

			pub := newPublisher(t, cfg)
			sub := newSecureSubscriber(t, cfg, "g-"+watermill.NewShortUUID())
			ch := subscribe(t, sub, topic)
			env := envelope("secure-bus", "slot-1", 1)
			if err := pub.Publish(topic, toMessage(t, env)); err != nil {
				t.Fatalf("publish: %v", err)
			}
			msg := receive(t, ch, "secure consume")
			msg.Ack()
			if msg.UUID != env.ID {
				t.Fatalf("received %s, want %s", msg.UUID, env.ID)
			}
		})
	}
}

func TestWrongPasswordIsASASLError(t *testing.T) {
	pki := tlstest.New(t)
	brokers := secureCluster(t, pki)
	for mech := range users {
		t.Run(mech, func(t *testing.T) {
			const wrong = "not-the-Pw-42"
			_, err := kafka.NewPublisher(secureConfig(brokers, pki, mech, wrong), logger)
			ce := connectError(t, err)
			if ce.Step != "SASL authentication" {
				t.Errorf("step = %q, want SASL authentication (%v)", ce.Step, err)
			}
			t.Log(err)
			mustSay(t, err, "kafka "+brokers[0]+": SASL authentication ("+mech+` as user "emitd") failed`)
			mustNotLeak(t, err, wrong)
		})
	}
}

func TestTLSFailuresAreTLSErrors(t *testing.T) {
	pki := tlstest.New(t)
	brokers := secureCluster(t, pki)
	u := users[kafka.MechanismSCRAMSHA256]

	t.Run("unknown CA", func(t *testing.T) {
		cfg := secureConfig(brokers, tlstest.New(t), kafka.MechanismSCRAMSHA256, u.pass)
		_, err := kafka.NewPublisher(cfg, logger)
		ce := connectError(t, err)
		if ce.Step != "TLS handshake" {
			t.Errorf("step = %q (%v)", ce.Step, err)
		}
		t.Log(err)
		mustSay(t, err, "kafka "+brokers[0]+": TLS handshake failed: the server's certificate is signed by an unknown authority: set tls.caFile")
		mustNotLeak(t, err, u.pass)
	})
	t.Run("wrong server name", func(t *testing.T) {
		cfg := secureConfig(brokers, pki, kafka.MechanismSCRAMSHA256, u.pass)
		cfg.TLS.ServerName = "kafka.example.com"
		_, err := kafka.NewPublisher(cfg, logger)
		mustSay(t, err, `TLS handshake failed: the server's certificate is not valid for "kafka.example.com"`)
	})
	t.Run("TLS listener, no TLS", func(t *testing.T) {
		_, err := kafka.NewPublisher(kafka.Config{Brokers: brokers}, logger)
		ce := connectError(t, err)
		if ce.Step != "connect" {
			t.Errorf("step = %q (%v)", ce.Step, err)
		}
	})
	t.Run("subscriber", func(t *testing.T) {
		cfg := secureConfig(brokers, tlstest.New(t), kafka.MechanismSCRAMSHA256, u.pass)
		cfg.ConsumerGroup = "g"
		_, err := kafka.NewSubscriber(cfg, logger)
		mustSay(t, err, "TLS handshake failed: the server's certificate is signed by an unknown authority")
	})
}

func TestSecurityProblems(t *testing.T) {
	for _, tc := range []struct {
		cfg  kafka.Config
		want string
	}{
		{kafka.Config{SASL: kafka.SASL{Mechanism: "GSSAPI"}}, `brokers.kafka.sasl.mechanism "GSSAPI": want PLAIN`},
		{kafka.Config{SASL: kafka.SASL{Mechanism: "PLAIN", Username: "u"}}, "brokers.kafka.sasl.password is required"},
		{kafka.Config{SASL: kafka.SASL{Mechanism: "AWS_MSK_IAM"}}, "AWS_MSK_IAM needs TLS"},
		{kafka.Config{TLS: tlsconfig.Config{KeyFile: "k.pem"}}, "brokers.kafka.tls.keyFile is set but brokers.kafka.tls.certFile is not"},
	} {
		p := tc.cfg.Problems("brokers.kafka")
		if len(p) == 0 || !strings.Contains(p[0], tc.want) {
			t.Errorf("Problems(%+v) = %q, want %q", tc.cfg.SASL, p, tc.want)
		}
	}
	ok := kafka.Config{TLS: tlsconfig.Config{Enabled: true}, SASL: kafka.SASL{Mechanism: "AWS_MSK_IAM", Region: "eu-west-1"}}
	if p := ok.Problems("brokers.kafka"); len(p) != 0 {
		t.Errorf("Problems of an MSK IAM section = %q", p)
	}
}

// kfake has no OAUTHBEARER: what is tested of AWS_MSK_IAM is the token,
// signed with the credentials of the SDK's default chain, for the region.
func TestMSKIAMToken(t *testing.T) {
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEMITDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "msk-secret-key-Pw")
	tok, err := (&kafka.MSKTokenProvider{Region: "eu-west-1"}).Token()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok.Token)
	if err != nil {
		t.Fatalf("token is not base64url: %v", err)
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Host != "kafka.eu-west-1.amazonaws.com" || q.Get("Action") != "kafka-cluster:Connect" {
		t.Errorf("token URL %s: want kafka.eu-west-1.amazonaws.com, Action kafka-cluster:Connect", u)
	}
	if c := q.Get("X-Amz-Credential"); !strings.HasPrefix(c, "AKIDEMITDTEST/") || !strings.Contains(c, "/eu-west-1/kafka-cluster/") {
		t.Errorf("X-Amz-Credential = %q: not signed with the environment's key for eu-west-1", c)
	}
	if q.Get("X-Amz-Signature") == "" || strings.Contains(string(raw), "msk-secret-key-Pw") {
		t.Errorf("token not signed, or carries the secret: %s", raw)
	}
}

func TestMSKIAMWithoutCredentials(t *testing.T) {
	isolateAWS(t)
	_, err := (&kafka.MSKTokenProvider{Region: "eu-west-1"}).Token()
	mustSay(t, err, "AWS_MSK_IAM: no usable AWS credentials in the default chain")

	// Through a publisher: the login step fails, named as such. The
	// listener speaks TLS; kfake's SASL does not matter, the token is made
	// before the first byte of the login.
	pki := tlstest.New(t)
	brokers := secureCluster(t, pki)
	cfg := kafka.Config{Brokers: brokers, TLS: tlsconfig.Config{CAFile: pki.CAFile},
		SASL: kafka.SASL{Mechanism: kafka.MechanismAWSMSKIAM, Region: "eu-west-1"}}
	_, err = kafka.NewPublisher(cfg, logger)
	mustSay(t, err, "kafka "+brokers[0]+": SASL authentication (AWS_MSK_IAM with the AWS default credentials) failed")
	mustSay(t, err, "no usable AWS credentials")
}

func TestMSKIAMRegionFromBrokerHost(t *testing.T) {
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEMITDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "x")
	cfg := kafka.Config{
		Brokers: []string{"b-1.demo.abc123.c2.kafka.eu-central-1.amazonaws.com:9098"},
		TLS:     tlsconfig.Config{Enabled: true},
		SASL:    kafka.SASL{Mechanism: kafka.MechanismAWSMSKIAM},
	}
	sc, err := cfg.SaramaConfig()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := sc.Net.SASL.TokenProvider.(*kafka.MSKTokenProvider); !ok || p.Region != "eu-central-1" {
		t.Fatalf("token provider = %#v, want region eu-central-1", sc.Net.SASL.TokenProvider)
	}
	cfg.Brokers = []string{"127.0.0.1:9098"}
	if _, err := cfg.SaramaConfig(); err == nil || !strings.Contains(err.Error(), "brokers.kafka.sasl.region") {
		t.Fatalf("no region anywhere: %v", err)
	}
}

// isolateAWS hides this machine's AWS settings from the SDK's chain (no
// files, no instance metadata).
func isolateAWS(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_WEB_IDENTITY_TOKEN_FILE": "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
	} {
		t.Setenv(k, v)
		if v == "" {
			os.Unsetenv(k)
		}
	}
}

func connectError(t *testing.T, err error) *kafka.ConnectError {
	t.Helper()
	var ce *kafka.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T): not a *kafka.ConnectError", err, err)
	}
	return ce
}

func mustSay(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v\nwant it to contain %q", err, want)
	}
}

func mustNotLeak(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error carries a secret: %v", err)
		}
	}
}

var saramaTopic = sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}

func newSecureSubscriber(t *testing.T, cfg kafka.Config, group string) message.Subscriber {
	t.Helper()
	cfg.ConsumerGroup = group
	sub, err := kafka.NewSubscriber(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// kfake offers PLAIN and SCRAM only: a mechanism the listener does not
// accept is named (Sarama itself forgets this error; the adapter's own
// probe finds it).
func TestRefusedMechanism(t *testing.T) {
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEMITDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "msk-secret-key-Pw")
	pki := tlstest.New(t)
	brokers := secureCluster(t, pki)
	cfg := kafka.Config{Brokers: brokers, TLS: tlsconfig.Config{CAFile: pki.CAFile},
		SASL: kafka.SASL{Mechanism: kafka.MechanismAWSMSKIAM, Region: "eu-west-1"}}
	_, err := kafka.NewPublisher(cfg, logger)
	t.Log(err)
	mustSay(t, err, "kafka "+brokers[0]+": SASL authentication (AWS_MSK_IAM with the AWS default credentials) failed: the broker does not offer mechanism AWS_MSK_IAM")
	mustNotLeak(t, err, "msk-secret-key-Pw")
}

// A reader of a topic the cluster does not have is told so, with the
// topic's name: that is no failure to connect.
func TestReaderOfAMissingTopicNamesIt(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1)) // no topics created on first use
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	sub, err := kafka.NewSubscriber(kafka.Config{Brokers: c.ListenAddrs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	_, err = sub.Subscribe(context.Background(), "no-such-topic")
	if err == nil || !strings.HasPrefix(err.Error(), "kafka subscribe no-such-topic: ") || errors.As(err, new(*kafka.ConnectError)) {
		t.Errorf("err = %v, want kafka subscribe no-such-topic: …, not a connect error", err)
	}
}
