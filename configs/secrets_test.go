package configs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emitd/emitd/adapters/amqp"
	"github.com/emitd/emitd/configs"
)

// amqpDoc is the shipped amqp.yaml with its brokers.amqp section replaced.
func amqpDoc(t *testing.T, section string) []byte {
	t.Helper()
	b, err := os.ReadFile("amqp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const from = "  amqp:\n    url: amqp://guest:guest@127.0.0.1:5672/   # the broker; the vhost after the last /\n    exchange: emitd               # durable topic exchange everything goes to\n"
	if !strings.Contains(string(b), from) {
		t.Fatal("fixture drifted: amqp.yaml's brokers.amqp section changed")
	}
	return []byte(strings.Replace(string(b), from, "  amqp:\n"+section, 1))
}

func mustFail(t *testing.T, doc []byte, wants ...string) string {
	t.Helper()
	_, err := configs.Parse(doc)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the error does not say %q:\n%v", w, err)
		}
	}
	return err.Error()
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("EMITD_T_PASS", "pa$$word")
	t.Setenv("EMITD_T_PREFETCH", "64")
	t.Setenv("EMITD_T_EMPTY", "")
	cfg, err := configs.Parse(amqpDoc(t, "    url: amqp://app:${EMITD_T_PASS}@rabbit:5672/prod\n"+
		"    prefetch: ${EMITD_T_PREFETCH}\n"+ // a plain scalar becomes an int
		"    exchange: \"${EMITD_T_EMPTY}\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := amqp.SectionOf(cfg)
	// The value is taken as it is: no second expansion of a $ it holds.
	if a.URL != "amqp://app:pa$$word@rabbit:5672/prod" || a.Prefetch != 64 || a.Exchange != "" {
		t.Errorf("url %q, prefetch %d, exchange %q", a.URL, a.Prefetch, a.Exchange)
	}
}

func TestEnvExpansionDollars(t *testing.T) {
	t.Setenv("EMITD_T_X", "x")
	cfg, err := configs.Parse(amqpDoc(t, "    url: amqp://app:a$b$$c$${EMITD_T_X}${EMITD_T_X}@rabbit:5672/\n"))
	if err != nil {
		t.Fatal(err)
	}
	// $$ is one $; a bare $ stays; $${ is a literal ${.
	if got, want := amqp.SectionOf(cfg).URL, "amqp://app:a$b$c${EMITD_T_X}x@rabbit:5672/"; got != want {
		t.Errorf("url %q, want %q", got, want)
	}
	mustFail(t, amqpDoc(t, "    url: amqp://app:${1PASS}@rabbit:5672/\n"), "brokers.amqp.url: ${ starts no ${NAME} reference", "write $${")
	mustFail(t, amqpDoc(t, "    url: amqp://app:${PASS@rabbit:5672/\n"), "brokers.amqp.url: ${ starts no ${NAME} reference")
}

func TestEnvUnsetIsAnErrorNamingFieldAndVariable(t *testing.T) {
	os.Unsetenv("EMITD_T_UNSET")
	t.Setenv("EMITD_T_SET", "topsecret-value")
	msg := mustFail(t, amqpDoc(t, "    url: amqp://app:${EMITD_T_SET}@rabbit:5672/\n    exchange: ${EMITD_T_UNSET}\n"),
		"brokers.amqp.exchange: environment variable EMITD_T_UNSET is not set")
	if strings.Contains(msg, "topsecret-value") {
		t.Errorf("the error shows a value:\n%s", msg)
	}
	// In a list: the path has the index.
	doc := strings.Replace(string(amqpDoc(t, "    url: amqp://guest:guest@127.0.0.1:5672/\n")),
		"tags: [backend, slotreservation]", "tags: [backend, \"${EMITD_T_UNSET}\"]", 1)
	mustFail(t, []byte(doc), "metadata.tags[1]: environment variable EMITD_T_UNSET is not set")
}

// The decoder quotes a value it cannot use; an expanded one is quoted as
// the reference, not as what it expanded to.
func TestTypeErrorQuotesTheReferenceNotTheValue(t *testing.T) {
	t.Setenv("EMITD_T_SECRET", "hunter2-hunter2")
	msg := mustFail(t, amqpDoc(t, "    url: amqp://guest:guest@127.0.0.1:5672/\n    prefetch: ${EMITD_T_SECRET}\n"),
		"${EMITD_T_SECRET}", "cannot unmarshal")
	if strings.Contains(msg, "hunter2") {
		t.Errorf("the error shows the value:\n%s", msg)
	}
}

func TestFileTwins(t *testing.T) {
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "amqp-url")
	if err := os.WriteFile(urlFile, []byte("amqp://app:from-file@rabbit:5672/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Parse(amqpDoc(t, "    urlFile: "+urlFile+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := amqp.SectionOf(cfg).URL; got != "amqp://app:from-file@rabbit:5672/" {
		t.Errorf("url %q: the file, its newline trimmed", got)
	}

	t.Run("both set", func(t *testing.T) {
		mustFail(t, amqpDoc(t, "    url: amqp://guest:guest@127.0.0.1:5672/\n    urlFile: "+urlFile+"\n"),
			"brokers.amqp.url and brokers.amqp.urlFile: both set")
	})
	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(dir, "nope")
		msg := mustFail(t, amqpDoc(t, "    urlFile: "+missing+"\n"),
			"brokers.amqp.urlFile: cannot read "+missing+": no such file or directory")
		if n := strings.Count(msg, "cannot read"); n != 1 {
			t.Errorf("reported %d times:\n%s", n, msg)
		}
	})
	t.Run("unreadable file", func(t *testing.T) {
		// A directory: unreadable even for root, who reads a mode-000 file.
		mustFail(t, amqpDoc(t, "    urlFile: "+dir+"\n"), "brokers.amqp.urlFile: cannot read "+dir+": is a directory")
	})
	t.Run("store.urlFile wins over EMITD_STORE_URL", func(t *testing.T) {
		t.Setenv(configs.StoreURLEnv, "postgres://env@db:5432/env")
		f := filepath.Join(dir, "store-url")
		os.WriteFile(f, []byte("postgres://emitd:pw@db:5432/emitd\r\n"), 0o600)
		b, _ := os.ReadFile("postgres.yaml")
		doc := strings.Replace(string(b), `  url: ""`, "  urlFile: "+f, 1)
		cfg, err := configs.Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Store.URL != "postgres://emitd:pw@db:5432/emitd" {
			t.Errorf("store.url %q", cfg.Store.URL)
		}
	})
}

func TestShowRedacts(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "store-url")
	os.WriteFile(f, []byte("host=db dbname=emitd user=emitd password='pg pass'\n"), 0o600)
	b, _ := os.ReadFile("postgres.yaml")
	doc := strings.Replace(string(b), `  url: ""`, "  urlFile: "+f, 1)
	doc = strings.Replace(doc, "url: nats://127.0.0.1:4222", "url: nats://u:natspw@n1:4222,nats://n2tok3n@n2:4222", 1)
	cfg, err := configs.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	out, err := configs.ShowYAML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, secret := range []string{"pg pass", "natspw", "n2tok3n"} {
		if strings.Contains(s, secret) {
			t.Errorf("config show prints %q:\n%s", secret, s)
		}
	}
	for _, want := range []string{
		"url: host=db dbname=emitd user=emitd password=xxxxx",
		"urlFile: " + f,
		"url: nats://u:xxxxx@n1:4222,nats://xxxxx@n2:4222",
		"retention: 168h0m0s", // the effective value
		"listen: 127.0.0.1:9464",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("config show lacks %q:\n%s", want, s)
		}
	}
	if cfg.Store.URL != "host=db dbname=emitd user=emitd password='pg pass'" {
		t.Errorf("ShowYAML changed the configuration: %q", cfg.Store.URL)
	}
}

// Redacted copies, also the broker sections behind their interface: the
// configuration the daemon runs with keeps its secrets.
func TestRedactedLeavesTheOriginal(t *testing.T) {
	c := &configs.Config{Store: configs.StoreConfig{URL: "postgres://u:pw@h/db"}, Brokers: configs.BrokersConfig{}}
	c.Brokers.Set(amqp.BrokerName, &amqp.Section{URL: "amqp://u:pw@h/"})
	r := configs.Redacted(c)
	if c.Store.URL != "postgres://u:pw@h/db" || amqp.SectionOf(c).URL != "amqp://u:pw@h/" {
		t.Errorf("original changed: %q %q", c.Store.URL, amqp.SectionOf(c).URL)
	}
	if r.Store.URL != "postgres://u:xxxxx@h/db" || amqp.SectionOf(r).URL != "amqp://u:xxxxx@h/" {
		t.Errorf("copy: %q %q", r.Store.URL, amqp.SectionOf(r).URL)
	}
}
