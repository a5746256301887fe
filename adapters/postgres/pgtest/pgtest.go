// Package pgtest gives tests a PostgreSQL store of their own: a fresh
// schema in the machine's database (EMITD_TEST_POSTGRES_URL, default
// postgres://127.0.0.1:5432/test), dropped when the test ends. Without the
// server a test is skipped, unless CI is set: then it fails.
package pgtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// BaseURL is the database the tests use.
func BaseURL() string {
	if u := os.Getenv("EMITD_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://127.0.0.1:5432/test?sslmode=disable"
}

// Need skips (or, under CI, fails) the test when the server is not there.
func Need(t testing.TB) {
	t.Helper()
	u, err := url.Parse(BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	host := u.Host
	if !strings.Contains(host, ":") {
		host += ":5432"
	}
	c, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is not listening on %s (CI is set, so this fails instead of skipping)", host)
		}
		t.Skipf("PostgreSQL is not listening on %s", host)
	}
	c.Close()
}

// Schema creates a fresh schema and returns a URL whose connections work in
// it (search_path), dropping it when the test ends.
func Schema(t testing.TB) string {
	t.Helper()
	Need(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := "emitd_test_" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), BaseURL())
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE")
	})
	u, _ := url.Parse(BaseURL())
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// Exec runs statements on the base database (for tests that break things).
func Exec(t testing.TB, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(fmt.Errorf("%s: %w", sql, err))
	}
}

// Proxy is a TCP proxy in front of the test database, which a test cuts
// (every connection dropped, new ones refused) and restores: the database
// going away and coming back, as the daemon sees it.
type Proxy struct {
	t      testing.TB
	target string
	ln     net.Listener
	addr   string

	mu    chan struct{} // a one-slot lock
	down  bool
	conns []net.Conn
}

// NewProxy starts a proxy to the base database's host and returns it; URL
// rewrites a database URL to go through it.
func NewProxy(t testing.TB) *Proxy {
	t.Helper()
	Need(t)
	u, _ := url.Parse(BaseURL())
	target := u.Host
	if !strings.Contains(target, ":") {
		target += ":5432"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, target: target, ln: ln, addr: ln.Addr().String(), mu: make(chan struct{}, 1)}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.Cut() })
	return p
}

func (p *Proxy) lock()   { p.mu <- struct{}{} }
func (p *Proxy) unlock() { <-p.mu }

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.lock()
		if p.down {
			p.unlock()
			c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			p.unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.unlock()
		go func() { _, _ = io.Copy(s, c); s.Close() }()
		go func() { _, _ = io.Copy(c, s); c.Close() }()
	}
}

// URL is dsn with its host and port replaced by the proxy's.
func (p *Proxy) URL(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		p.t.Fatal(err)
	}
	u.Host = p.addr
	return u.String()
}

// Cut drops every connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.lock()
	defer p.unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.lock()
	defer p.unlock()
	p.down = false
}
