package main

import (
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/emitd/emitd/adapters/amqp"
	"github.com/emitd/emitd/adapters/amqp/amqptest"
	"github.com/emitd/emitd/adapters/postgres/pgtest"
)

// Known secrets, given the ways an operator gives them: through ${VAR} and
// through a …File twin. None may appear in what emitd prints.
const (
	pgSecret   = "pgS3cret-Alpha"
	amqpSecret = "amqpWr0ng-Bravo"
)

// TestSecretsStayOutOfOutput runs the real binary on PostgreSQL and
// RabbitMQ with known secrets, and searches everything it prints (config
// show, config validate, serve's log, its error at start) for them.
func TestSecretsStayOutOfOutput(t *testing.T) {
	needTCP(t, "RabbitMQ", "127.0.0.1:5672")
	// PostgreSQL here trusts local connections: any password connects, so
	// the store works with one emitd must still never print.
	storeURL, err := url.Parse(pgtest.Schema(t))
	if err != nil {
		t.Fatal(err)
	}
	storeURL.User = url.UserPassword(pgUser(storeURL), pgSecret)
	t.Setenv("EMITD_T_STORE_URL", storeURL.String())

	dir := t.TempDir()
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	amqpFile := filepath.Join(dir, "amqp-url")
	config := func(amqpURLLine string) string {
		b, err := os.ReadFile("../../configs/amqp.yaml")
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(b), "dataDir: ./data", "dataDir: "+filepath.Join(dir, "data"), 1)
		s = strings.Replace(s, "driver: sqlite                  # file dataDir/emitd.db", "driver: postgres\n  url: ${EMITD_T_STORE_URL}", 1)
		s = strings.Replace(s, "    url: amqp://guest:guest@127.0.0.1:5672/   # the broker; the vhost after the last /", amqpURLLine, 1)
		// Names of this test's own on the shared RabbitMQ.
		s = strings.Replace(s, "exchange: emitd ", "exchange: emitd-secrets-"+id, 1)
		for _, n := range []string{"slot-commands-dlq", "slot-command-results", "slot-commands", "reservation", "analytics"} {
			s = strings.Replace(s, ": "+n+" ", ": "+n+"-"+id+" ", 1)
		}
		s = offOperations(t, s)
		path := filepath.Join(dir, "emitd-"+uuid.NewString()[:6]+".yaml")
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Cleanup(func() { deleteQueues(id) })

	clean := func(what, out string, secrets ...string) {
		t.Helper()
		for _, s := range append(secrets, pgSecret, amqpSecret) {
			if strings.Contains(out, s) {
				t.Errorf("%s prints the secret %q:\n%s", what, s, out)
			}
		}
	}
	mustFile := func(content string) {
		if err := os.WriteFile(amqpFile, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("wrong password through a file twin", func(t *testing.T) {
		mustFile("amqp://guest:" + amqpSecret + "@127.0.0.1:5672/")
		cfg := config("    urlFile: " + amqpFile)

		out, errOut, code := run(t, "", "config", "show", "--config", cfg)
		if code != 0 {
			t.Fatalf("config show: %d %s", code, errOut)
		}
		clean("config show", out+errOut)
		for _, want := range []string{"url: amqp://guest:xxxxx@127.0.0.1:5672/", "urlFile: " + amqpFile,
			"url: " + strings.Replace(storeURL.String(), pgSecret, "xxxxx", 1)} {
			if !strings.Contains(out, want) {
				t.Errorf("config show lacks %q:\n%s", want, out)
			}
		}

		out, errOut, code = run(t, "", "config", "validate", "--config", cfg)
		if code != 0 {
			t.Fatalf("config validate: %d %s", code, errOut)
		}
		clean("config validate", out+errOut)

		// RabbitMQ refuses the password: serve stops at start and says why,
		// with the broker and its address.
		out, errOut, code = run(t, "", "serve", "--config", cfg)
		clean("serve", out+errOut)
		if code == 0 {
			t.Fatalf("serve with a wrong password exited 0:\n%s", errOut)
		}
		for _, want := range []string{"amqp 127.0.0.1:5672: ", `authentication (user "guest") failed`} {
			if !strings.Contains(errOut, want) {
				t.Errorf("serve's error does not say %q:\n%s", want, errOut)
			}
		}
	})

	t.Run("a URL that does not parse, through ${VAR}", func(t *testing.T) {
		// net/url quotes the whole URL in its error, password and all.
		t.Setenv("EMITD_T_AMQP_URL", "amqp://guest:"+amqpSecret+"%zz@127.0.0.1:5672/")
		cfg := config("    url: ${EMITD_T_AMQP_URL}")
		out, errOut, code := run(t, "", "config", "show", "--config", cfg)
		clean("config show", out+errOut, "%zz")
		if code != 0 {
			t.Fatalf("config show: %d %s", code, errOut)
		}
		out, errOut, code = run(t, "", "serve", "--config", cfg)
		clean("serve", out+errOut, "%zz")
		// The address is not shown either: it comes out of the URL that
		// does not parse, and a password with a / in it ends up there.
		if code == 0 || !strings.Contains(errOut, "brokers.amqp.url: invalid URL: ") || !strings.Contains(errOut, "(brokers.amqp.url)") {
			t.Errorf("serve: code %d, want an error naming brokers.amqp.url:\n%s", code, errOut)
		}
	})

	t.Run("serving, the store's password through ${VAR}", func(t *testing.T) {
		mustFile("amqp://guest:guest@127.0.0.1:5672/")
		cfg := config("    urlFile: " + amqpFile)
		p := startServe(t, cfg, "--log-level", "debug")
		if err := p.stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM: %v\n%s", err, p.Log())
		}
		clean("serve's log", p.Log())
		if !strings.Contains(p.Log(), "emitd stopped cleanly") {
			t.Errorf("no clean stop:\n%s", p.Log())
		}
	})
}

// pgUser is the user of the test database's URL, or the one libpq (and
// pgx) would take.
func pgUser(u *url.URL) string {
	if u.User != nil && u.User.Username() != "" {
		return u.User.Username()
	}
	if v := os.Getenv("PGUSER"); v != "" {
		return v
	}
	if cu, err := user.Current(); err == nil {
		return cu.Username
	}
	return "postgres"
}

func needTCP(t *testing.T, what, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not running on %s: %v", what, addr, err)
	}
	t.Skipf("%s is not running on %s: %v", what, addr, err)
}

// deleteQueues removes what the test declared on the shared RabbitMQ.
func deleteQueues(id string) {
	amqptest.Delete(amqptest.MachineURL,
		[]string{amqp.QueueName("slot-commands-"+id, "emitd"), amqp.QueueName("slot-commands-dlq-"+id, "emitd-dlq")},
		"emitd-secrets-"+id)
}
