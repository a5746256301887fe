// Package kafkatest starts an in-process Kafka broker (kfake, from franz-go)
// for tests: no Docker, no JVM.
package kafkatest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/emitd/emitd/adapters/tlsconfig/tlstest"
)

// Partitions is the partition count of topics the test cluster creates on
// first use.
const Partitions = 4

// Options are the kfake settings Start uses (docs/TESTING-BROKERS.md): one broker
// on a free loopback port, topics created on first use with 4 partitions.
// kfake's defaults (3 brokers, 10 partitions, no auto creation) make a first
// Watermill publish fail with "topic or partition that does not exist".
func Options() []kfake.Opt {
	return []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(Partitions),
	}
}

// Start starts a kfake cluster (see Options) and returns its bootstrap
// brokers. It is closed at t.Cleanup: kfake keeps every record in memory, so
// use one cluster per test (or per package), never one per process.
func Start(t testing.TB) (brokers []string) {
	t.Helper()
	return StartCluster(t).ListenAddrs()
}

// StartCluster is Start for tests that need the cluster itself, with extra
// kfake options applied after Options.
func StartCluster(t testing.TB, extra ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append(Options(), extra...)...)
	if err != nil {
		t.Fatalf("kafkatest: start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Login is one SASL user of a secure test cluster.
type Login struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (what kfake
	// offers).
	Mechanism, User, Password string
}

// StartSecure starts a cluster (see Options) that speaks only TLS, with the
// server certificate of pki, and wants a SASL login from one of logins
// (each a superuser). It returns the bootstrap brokers.
func StartSecure(t testing.TB, pki *tlstest.PKI, logins ...Login) (brokers []string) {
	t.Helper()
	opts := []kfake.Opt{kfake.TLS(pki.ServerConfig(false)), kfake.EnableSASL()}
	for _, l := range logins {
		opts = append(opts, kfake.Superuser(l.Mechanism, l.User, l.Password))
	}
	return StartCluster(t, opts...).ListenAddrs()
}
