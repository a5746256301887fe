package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/emitd/emitd/adapters/amqp"
	"github.com/emitd/emitd/adapters/amqp/amqptest"
	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/kafka/kafkatest"
	"github.com/emitd/emitd/adapters/natsjs/natstest"
	"github.com/emitd/emitd/adapters/tlsconfig/tlstest"
	"github.com/emitd/emitd/configs/redact"
)

// The secure setups: the shipped configs/kafka.yaml, nats.yaml and
// amqp.yaml pointed at brokers that want TLS and a login, the secrets given
// the ways an operator gives them (a …File twin, ${VAR}, a creds file).
// Each setup runs serve, send and tail with the good secrets, then serve
// with a wrong one and with a CA the broker's certificate is not signed by:
// serve must stop at start, naming the broker, its address and the step
// that failed. Nothing any emitd process prints (config show, config
// validate, serve, send, tail) may contain a known secret.

// Known secrets. The wrong ones are searched for as well: a refused
// password is as secret as the right one (it is often a neighbour's).
const (
	kafkaPassword = "kafka-Scram-s3cret-Alpha"
	natsPassword  = "nats-s3cret-Bravo"
	wrongPassword = "wr0ng-s3cret-Charlie"
)

// serveTimeout bounds a serve that must fail at start: a daemon still
// running then is retrying instead of saying what is wrong.
const serveTimeout = 30 * time.Second

// after returns the old->new pair that puts lines (indented YAML)
// after the line old of a shipped file.
func after(old string, lines ...string) []string {
	return []string{old, old + "\n" + strings.Join(lines, "\n")}
}

// secureJourney serves, then sends CreateSlots and ReserveSlot with `emitd
// send` and reads each outcome and the events of both buses back with
// `emitd tail`, all with the setup's configuration. (Both buses: RabbitMQ
// refuses an event no queue is bound for, and a tail binds one.)
func secureJourney(t *testing.T, s *setup, domainBus, analyticsBus string, tailArgs ...string) {
	t.Helper()
	s.configCommands(t, 0)
	// At debug level: the most a log can say, all of it searched.
	d := s.start(`msg="emitd serving"`, "serve", "--config", s.cfg, "--log-level", "debug")
	results := s.tail("", tailArgs...)
	dom := s.tail(domainBus, tailArgs...)
	ana := s.tail(analyticsBus, tailArgs...)
	await := func(id string) {
		t.Helper()
		for {
			var o outcome
			line := results.next(t, "outcome of "+id)
			if err := json.Unmarshal([]byte(line), &o); err != nil {
				t.Fatalf("results: %q is not an outcome: %v", line, err)
			}
			if o.CommandID == id {
				if o.Status != "accepted" {
					t.Fatalf("command %s: outcome %+v, want accepted", id, o)
				}
				return
			}
		}
	}
	event := func(want string) detail {
		t.Helper()
		e := entryOf(t, want, domainBus, dom.next(t, want+" on "+domainBus))
		if e.DetailType != want {
			t.Fatalf("%s carried %s, want %s", domainBus, e.DetailType, want)
		}
		if a := entryOf(t, want, analyticsBus, ana.next(t, want+" on "+analyticsBus)); a.DetailType != want {
			t.Fatalf("%s carried %s, want %s", analyticsBus, a.DetailType, want)
		}
		return parseDetail(t, e)
	}
	await(s.send(`{"type":"CreateSlots","data":{"date":"2026-12-01","startHour":9,"count":1}}`))
	slotID, _ := event("Created").Data["slotId"].(string)
	if slotID == "" {
		t.Fatal("Created carries no slotId")
	}
	await(s.send(fmt.Sprintf(`{"type":"ReserveSlot","data":{"slotId":%q,"hostName":"Sam Person"}}`, slotID)))
	if got := event("Reserved"); got.Data["slotId"] != slotID || got.Data["hostName"] != "Sam Person" {
		t.Errorf("Reserved: %v, want slot %s reserved by Sam Person", got.Data, slotID)
	}
	d.stop(t)
}

// configCommands runs `config show` and `config validate` and wants exit
// code want from both (their output is searched with the rest).
func (s *setup) configCommands(t *testing.T, want int) {
	t.Helper()
	for _, sub := range []string{"show", "validate"} {
		if _, stderr, code := s.runCLI("config", sub, "--config", s.cfg); code != want {
			t.Fatalf("config %s: exit %d, want %d\n%s", sub, code, want, stderr)
		}
	}
}

// serveFails runs `emitd serve`, `send` and `tail`, which must each exit
// non-zero within serveTimeout with an error containing each of wants.
func (s *setup) serveFails(t *testing.T, wants ...string) {
	t.Helper()
	s.configCommands(t, 0) // the files are all there: only the broker can say no
	for _, args := range [][]string{
		{"serve", "--config", s.cfg},
		{"send", "--config", s.cfg, `{"type":"CreateSlots","data":{"date":"2026-12-01","startHour":9,"count":1}}`},
		{"tail", "--config", s.cfg, "--results"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), serveTimeout)
		cmd := exec.CommandContext(ctx, emitdBin, args...)
		cmd.Env = append(os.Environ(), s.env...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		began := time.Now()
		err := cmd.Run()
		timedOut := ctx.Err() != nil
		cancel()
		s.printed.WriteString(out.String() + errb.String())
		if timedOut {
			t.Fatalf("%s still running after %s (a retry loop instead of an error at start?):\n%s", args[0], serveTimeout, errb.String())
		}
		if err == nil {
			t.Fatalf("%s exited 0:\n%s", args[0], errb.String())
		}
		t.Logf("%s refused in %s: %s", args[0], time.Since(began).Round(time.Millisecond), lastLine(errb.String()))
		for _, w := range wants {
			if !strings.Contains(errb.String(), w) {
				t.Errorf("%s's error does not say %q:\n%s", args[0], w, errb.String())
			}
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// noSecrets fails if anything s's processes printed contains a secret.
func noSecrets(t *testing.T, s *setup, secrets ...string) {
	t.Helper()
	out := s.output()
	if out == "" {
		t.Fatal("nothing printed: the search would prove nothing")
	}
	for _, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("an emitd process printed the secret %q:\n%s", secret, out)
		}
	}
}

func writeSecret(t *testing.T, dir, name, value string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSecureKafka: kfake speaking only TLS and wanting SASL SCRAM-SHA-256;
// the password comes from brokers.kafka.sasl.passwordFile.
func TestSecureKafka(t *testing.T) {
	t.Parallel()
	pki := tlstest.New(t)
	addr := kafkatest.StartSecure(t, pki, kafkatest.Login{Mechanism: "SCRAM-SHA-256", User: "emitd", Password: kafkaPassword})[0]
	dir := t.TempDir()
	kafkaSetup := func(caFile, password string) *setup {
		return newSetup(t, "kafka.yaml", nil, append([]string{"127.0.0.1:9092", addr},
			after("    replicationFactor: 1          # of topics emitd creates: 3 on a production cluster",
				"    tls:",
				"      enabled: true",
				"      caFile: "+caFile,
				"    sasl:",
				"      mechanism: SCRAM-SHA-256",
				"      username: emitd",
				"      passwordFile: "+writeSecret(t, dir, "pw-"+runID(), password))...)...)
	}

	good := kafkaSetup(pki.CAFile, kafkaPassword)
	secureJourney(t, good, "reservation", "analytics", "--from-beginning")
	noSecrets(t, good, kafkaPassword)

	t.Run("wrong password", func(t *testing.T) {
		s := kafkaSetup(pki.CAFile, wrongPassword)
		s.serveFails(t, "kafka "+addr+": SASL authentication (SCRAM-SHA-256 as user \"emitd\") failed")
		noSecrets(t, s, kafkaPassword, wrongPassword)
	})
	t.Run("unknown CA", func(t *testing.T) {
		s := kafkaSetup(tlstest.New(t).CAFile, kafkaPassword)
		s.serveFails(t, "kafka "+addr+": TLS handshake failed: the server's certificate is signed by an unknown authority")
		noSecrets(t, s, kafkaPassword)
	})
}

// natsURLLine is the broker line of the shipped configs/nats.yaml.
const natsURLLine = "    url: nats://127.0.0.1:4222    # the NATS server (JetStream on)"

// TestSecureNATSPassword: an in-process nats-server with TLS and a user
// whose password comes through ${VAR}.
func TestSecureNATSPassword(t *testing.T) {
	t.Parallel()
	pki := tlstest.New(t)
	addr := natstest.StartServer(t, func(o *server.Options) {
		o.TLSConfig, o.TLS, o.TLSTimeout = pki.ServerConfig(false), true, 5
		o.Username, o.Password = "emitd", natsPassword
	})
	natsSetup := func(caFile, password string) *setup {
		return newSetup(t, "nats.yaml", []string{"EMITD_T_NATS_PASSWORD=" + password}, natsURLLine, strings.Join([]string{
			"    url: tls://" + addr,
			"    user: emitd",
			"    password: ${EMITD_T_NATS_PASSWORD}",
			"    tls:",
			"      caFile: " + caFile}, "\n"))
	}

	good := natsSetup(pki.CAFile, natsPassword)
	secureJourney(t, good, "reservation", "analytics", "--from-beginning")
	noSecrets(t, good, natsPassword)
	// What is searched holds config show's output, the password redacted.
	if !strings.Contains(good.output(), "password: "+redact.Redacted) {
		t.Errorf("config show does not show the password redacted:\n%s", good.output())
	}

	t.Run("wrong password", func(t *testing.T) {
		s := natsSetup(pki.CAFile, wrongPassword)
		s.serveFails(t, `nats `+addr+`: authentication (user "emitd") failed: the server refused the credentials`)
		noSecrets(t, s, natsPassword, wrongPassword)
	})
	t.Run("unknown CA", func(t *testing.T) {
		s := natsSetup(tlstest.New(t).CAFile, natsPassword)
		s.serveFails(t, "nats "+addr+": TLS handshake failed: the server's certificate is signed by an unknown authority")
		noSecrets(t, s, natsPassword)
	})
}

// TestSecureNATSCreds: an operator-mode nats-server; emitd logs in with a
// .creds file (user JWT and nkey seed).
func TestSecureNATSCreds(t *testing.T) {
	t.Parallel()
	op := natstest.NewOperator(t)
	_, akp := op.Account(t, true)
	addr := natstest.StartServer(t, op.Trust)
	natsSetup := func(credsFile string) *setup {
		return newSetup(t, "nats.yaml", nil, natsURLLine, "    url: nats://"+addr+"\n    credsFile: "+credsFile)
	}
	// The creds file's seed is its secret.
	seedOf := func(file string) string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := nkeys.ParseDecoratedNKey(b)
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := kp.Seed()
		return string(seed)
	}

	creds := natstest.Creds(t, akp, time.Time{})
	good := natsSetup(creds)
	secureJourney(t, good, "reservation", "analytics", "--from-beginning")
	noSecrets(t, good, seedOf(creds))

	t.Run("unknown account", func(t *testing.T) {
		stranger, _ := nkeys.CreateAccount()
		file := natstest.Creds(t, stranger, time.Time{})
		s := natsSetup(file)
		s.serveFails(t, "nats "+addr+": authentication (creds file "+file+") failed")
		noSecrets(t, s, seedOf(file))
	})
}

// TestSecureAMQP: amqps to the machine's RabbitMQ through a TLS-terminating
// proxy, the user and password apart from the URL, the password through
// ${VAR}. The machine's only login is guest/guest, so what the good run
// can search for is the URL form and the config line; the wrong password
// is searched everywhere.
func TestSecureAMQP(t *testing.T) {
	t.Parallel()
	needServer(t, "RabbitMQ", "127.0.0.1:5672")
	pki := tlstest.New(t)
	addr := tlstest.Proxy(t, pki.ServerConfig(false), "127.0.0.1:5672")
	run := runID()
	replace, topics := uniqueNames(run)
	t.Cleanup(func() { deleteAMQPQueues(topics) })
	amqpSetup := func(caFile, password string) *setup {
		return newSetup(t, "amqp.yaml", []string{"EMITD_T_AMQP_PASSWORD=" + password}, append(append([]string(nil), replace...),
			"    url: amqp://guest:guest@127.0.0.1:5672/   # the broker; the vhost after the last /", strings.Join([]string{
				"    url: amqps://" + addr + "/",
				"    user: guest",
				"    password: ${EMITD_T_AMQP_PASSWORD}",
				"    tls:",
				"      caFile: " + caFile}, "\n"))...)
	}

	good := amqpSetup(pki.CAFile, "guest")
	secureJourney(t, good, "reservation-"+run, "analytics-"+run)
	noSecrets(t, good, "guest:guest", "password: guest")

	t.Run("wrong password", func(t *testing.T) {
		s := amqpSetup(pki.CAFile, wrongPassword)
		s.serveFails(t, `amqp `+addr+`: authentication (user "guest") failed: the broker refused the user name or password`,
			"(brokers.amqp.user and brokers.amqp.password)")
		noSecrets(t, s, wrongPassword, "password: guest")
	})
	t.Run("unknown CA", func(t *testing.T) {
		s := amqpSetup(tlstest.New(t).CAFile, "guest")
		s.serveFails(t, "amqp "+addr+": TLS handshake failed: the server's certificate is signed by an unknown authority", "(brokers.amqp.tls)")
		noSecrets(t, s, "guest:guest", "password: guest")
	})
}

// deleteAMQPQueues removes the commands and poison queues emitd declared
// for topics (see uniqueNames) on the machine's RabbitMQ.
func deleteAMQPQueues(topics []string) {
	amqptest.Delete(amqptest.MachineURL, []string{amqp.QueueName(topics[0], "emitd"), amqp.QueueName(topics[1], broker.DeadLetterGroup)})
}

// TestValidateNamesMissingSecureFiles: every file a secure setting names
// is read by `config validate`; a missing one is exit 2 with its field
// path, before any broker is dialled.
func TestValidateNamesMissingSecureFiles(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		file, old, new, field string
	}{
		{"kafka.yaml", "    replicationFactor: 1 ", "    tls: {caFile: " + missing + "}\n    replicationFactor: 1 ", "brokers.kafka.tls.caFile"},
		{"kafka.yaml", "    replicationFactor: 1 ", "    sasl: {mechanism: PLAIN, username: u, passwordFile: " + missing + "}\n    replicationFactor: 1 ", "brokers.kafka.sasl.passwordFile"},
		{"nats.yaml", natsURLLine, natsURLLine + "\n    credsFile: " + missing, "brokers.nats.credsFile"},
		{"nats.yaml", natsURLLine, natsURLLine + "\n    nkeySeedFile: " + missing, "brokers.nats.nkeySeedFile"},
		{"nats.yaml", natsURLLine, natsURLLine + "\n    user: u\n    passwordFile: " + missing, "brokers.nats.passwordFile"},
		{"amqp.yaml", "    exchange: emitd ", "    tls: {certFile: " + missing + ", keyFile: " + missing + "}\n    exchange: emitd ", "brokers.amqp.tls.certFile"},
		{"amqp.yaml", "    exchange: emitd ", "    user: u\n    passwordFile: " + missing + "\n    exchange: emitd ", "brokers.amqp.passwordFile"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			s := newSetup(t, tc.file, nil, tc.old, tc.new)
			_, stderr, code := s.runCLI("config", "validate", "--config", s.cfg)
			if want := tc.field + ": cannot read " + missing + ": no such file or directory"; code != 2 || !strings.Contains(stderr, want) {
				t.Errorf("config validate: exit %d, stderr:\n%s\nwant exit 2 and %q", code, stderr, want)
			}
		})
	}
}
