// Package natstest starts in-process nats-servers for tests (JetStream on,
// a free loopback port, authentication and TLS as the test sets them) and
// mints operator-mode accounts and .creds files for them.
package natstest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// StartServer runs an in-process nats-server with JetStream on a free
// loopback port, set up by mutate (nil: open); it returns host:port. The
// server is shut down at t.Cleanup.
func StartServer(t testing.TB, mutate func(*server.Options)) string {
	t.Helper()
	opts := &server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	}
	if mutate != nil {
		mutate(opts)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("natstest: nats-server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("natstest: nats-server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv.Addr().String()
}

// Operator is an operator-mode setup: the operator, a system account and
// the accounts added with Account, in a memory resolver. Trust puts it into
// a server's options.
type Operator struct {
	claims   *jwt.OperatorClaims
	okp      nkeys.KeyPair
	resolver *server.MemAccResolver
	sysPub   string
}

// NewOperator makes an operator with its system account.
func NewOperator(t testing.TB) *Operator {
	t.Helper()
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	ojwt, err := oc.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	op := &Operator{claims: claims, okp: okp, resolver: &server.MemAccResolver{}}
	op.sysPub, _ = op.Account(t, false)
	return op
}

// Trust makes the server trust the operator (for StartServer's mutate).
func (op *Operator) Trust(o *server.Options) {
	o.TrustedOperators = []*jwt.OperatorClaims{op.claims}
	o.AccountResolver = op.resolver
	o.SystemAccount = op.sysPub
}

// Account adds an account, with unlimited JetStream when js, and returns
// its public key and key pair.
func (op *Operator) Account(t testing.TB, js bool) (string, nkeys.KeyPair) {
	t.Helper()
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	if js {
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	}
	ajwt, err := ac.Encode(op.okp)
	if err != nil {
		t.Fatal(err)
	}
	if err := op.resolver.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}
	return apub, akp
}

// Creds writes a .creds file (user JWT and seed) for a new user of the
// account akp, expiring at expires (zero: never), and returns its path.
func Creds(t testing.TB, akp nkeys.KeyPair, expires time.Time) string {
	t.Helper()
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	uc := jwt.NewUserClaims(upub)
	if !expires.IsZero() {
		uc.Expires = expires.Unix()
	}
	ujwt, err := uc.Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	b, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "emitd.creds")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
