package postgres_test

import (
	"context"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/emitd/emitd/adapters/postgres"
	"github.com/emitd/emitd/adapters/postgres/pgtest"
	"github.com/emitd/emitd/adapters/storetest"
)

func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, pgtest.Schema(t)) })
}

const secret = "s3cr3t-Pa55word"

// refusesPassword is a PostgreSQL wire-protocol server that asks for a
// password and refuses it, as a server with password authentication does
// (the machine's server trusts every local user, so it cannot show this).
func refusesPassword(t *testing.T) string {
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
				be := pgproto3.NewBackend(c, c)
				if _, err := be.ReceiveStartupMessage(); err != nil {
					return
				}
				be.Send(&pgproto3.AuthenticationCleartextPassword{})
				if err := be.Flush(); err != nil {
					return
				}
				if _, err := be.Receive(); err != nil {
					return
				}
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "emitd"`})
				_ = be.Flush()
			}()
		}
	}()
	return ln.Addr().String()
}

// A database that cannot be used is a clear error at start, naming what to
// fix, within the start-up bound, and never quoting the password.
func TestBadStartsAreClearErrors(t *testing.T) {
	pgtest.Need(t)
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := free.Addr().String()
	free.Close()
	role := "emitd_noperm_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	pgtest.Exec(t, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() { pgtest.Exec(t, "DROP ROLE IF EXISTS "+role) })
	schemaURL := pgtest.Schema(t) // owned by the test's user: the role may not create in it
	noperm, _ := url.Parse(schemaURL)
	noperm.User = url.UserPassword(role, secret)

	for name, c := range map[string]struct {
		url  string
		want []string
	}{
		"unreachable":      {"postgres://emitd:" + secret + "@" + closedPort + "/emitd?sslmode=disable&connect_timeout=5", []string{closedPort, "connect"}},
		"no such database": {"postgres://127.0.0.1:5432/emitd_no_such_db?sslmode=disable&password=" + secret, []string{"emitd_no_such_db", "create the database first"}},
		"wrong password":   {"postgres://emitd:" + secret + "@" + refusesPassword(t) + "/emitd?sslmode=disable", []string{"authentication failed", "emitd"}},
		"no permission":    {noperm.String(), []string{"permission denied", "CREATE on the schema"}},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			s, err := postgres.Open(context.Background(), c.url)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if took := time.Since(start); took > 30*time.Second {
				t.Errorf("the error took %s", took)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error quotes the password: %q", err)
			}
			t.Logf("%s: %v", name, err)
		})
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://emitd:" + secret + "@db:5432/emitd?sslmode=verify-full": "postgres://emitd:xxxxx@db:5432/emitd?sslmode=verify-full",
		"postgres://db/emitd?password=" + secret:                            "postgres://db/emitd?password=xxxxx",
		"host=db dbname=emitd password=" + secret + " user=emitd":           "host=db dbname=emitd password=xxxxx user=emitd",
	} {
		if got := postgres.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
