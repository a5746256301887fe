package redact_test

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/emitd/emitd/configs/redact"
)

const secret = "s3cr/et?x@y"

func TestURL(t *testing.T) {
	esc := url.QueryEscape(secret)
	for in, want := range map[string]string{
		"postgres://emitd:hunter2@db:5432/emitd?sslmode=verify-full": "postgres://emitd:xxxxx@db:5432/emitd?sslmode=verify-full",
		"postgres://emitd:" + esc + "@db/emitd":                      "postgres://emitd:xxxxx@db/emitd",
		"postgres://db/emitd?sslmode=require&password=hunter2":       "postgres://db/emitd?sslmode=require&password=xxxxx",
		"postgres://emitd@db/emitd":                                  "postgres://emitd@db/emitd",
		"host=db dbname=emitd password=hunter2 user=emitd":           "host=db dbname=emitd password=xxxxx user=emitd",
		"host=db password='hunter 2' sslpassword=k user=emitd":       "host=db password=xxxxx sslpassword=xxxxx user=emitd",
		"amqp://guest:guest@127.0.0.1:5672/":                         "amqp://guest:xxxxx@127.0.0.1:5672/",
		"amqps://app:pw@rabbit.example.com/prod":                     "amqps://app:xxxxx@rabbit.example.com/prod",
		"nats://a:b@n1:4222,nats://a:b@n2:4222":                      "nats://a:xxxxx@n1:4222,nats://a:xxxxx@n2:4222",
		"nats://n1:4222, nats://n2:4222":                             "nats://n1:4222, nats://n2:4222",
		"nats://T0KEN@n1:4222":                                       "nats://xxxxx@n1:4222",
		// Not a valid URL (a raw / and @ in the password): redacted by shape.
		"amqp://app:" + secret + "@rabbit:5672/": "amqp://app:xxxxx@rabbit:5672/",
		"amqp://app:p%zz@rabbit:5672/":           "amqp://app:xxxxx@rabbit:5672/",
		"amqp://app:12/x@rabbit:5672/":           "amqp://app:xxxxx@rabbit:5672/",
	} {
		if got := redact.URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestURLError(t *testing.T) {
	raw := "amqp://app:p%zz" + "hunter2@rabbit:5672/"
	_, perr := url.Parse(raw) // net/url quotes the whole URL
	if !strings.Contains(perr.Error(), "hunter2") {
		t.Fatalf("the premise: net/url quotes the URL: %v", perr)
	}
	err := redact.URLError(perr, raw)
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "%zz") {
		t.Errorf("the password is still there: %v", err)
	}
	if !strings.Contains(err.Error(), "rabbit:5672") {
		t.Errorf("the address is gone: %v", err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Errorf("errors.As no longer finds the *url.Error: %v", err)
	}
	if e := errors.New("plain"); redact.Error(e, "x"+secret) != e {
		t.Errorf("an error without the secret is wrapped anyway")
	}
}

func TestSecrets(t *testing.T) {
	got := redact.Secrets("nats://u:" + url.QueryEscape(secret) + "@h:4222,nats://T0KEN@h2:4222")
	for _, want := range []string{secret, url.QueryEscape(secret), "T0KEN"} {
		found := false
		for _, g := range got {
			found = found || g == want
		}
		if !found {
			t.Errorf("Secrets misses %q: %q", want, got)
		}
	}
}

func TestParseError(t *testing.T) {
	for raw, want := range map[string]string{
		"amqp://guest:s3cret%zz@127.0.0.1:5672/": `invalid URL escape "xxxxx"`,
		// The / ends the user information: "guest:pa" is read as the host.
		"amqp://guest:pa/ss@127.0.0.1:5672/": `invalid port "xxxxx" after host`,
	} {
		_, err := url.Parse(raw)
		if err == nil {
			t.Fatalf("%s parses", raw)
		}
		got := redact.ParseError(err).Error()
		if got != want {
			t.Errorf("ParseError(%s) = %q, want %q", raw, got, want)
		}
	}
	_, err := url.Parse("nats://a:b%zz@h")
	var ee url.EscapeError
	if !errors.As(redact.ParseError(err), &ee) {
		t.Errorf("errors.As does not find the url.EscapeError")
	}
}

// nats.go reads a list entry without a scheme as nats://: its password or
// token is as secret as the first entry's.
func TestURLListEntriesWithoutScheme(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222, alice:hunter2pw@127.0.0.2:4222": "nats://127.0.0.1:4222, nats://alice:xxxxx@127.0.0.2:4222",
		"nats://tok@a:1,othertoken@b:2":                         "nats://xxxxx@a:1,nats://xxxxx@b:2",
	} {
		if got := redact.URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
	for in, secret := range map[string]string{
		"nats://127.0.0.1:4222, alice:hunter2pw@127.0.0.2:4222": "hunter2pw",
		"nats://tok@a:1,othertoken@b:2":                         "othertoken",
	} {
		if !slices.Contains(redact.Secrets(in), secret) {
			t.Errorf("Secrets(%q) = %q, missing %q", in, redact.Secrets(in), secret)
		}
	}
}
