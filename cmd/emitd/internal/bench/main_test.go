package bench

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// binDir holds the emitd binary, built on first use: `go test` without
// -bench (as in `make test`) runs only the quick tests and builds nothing.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// emitdBinary builds cmd/emitd once per test process, the way users get it
// (`go build`, no test flags: -race would make it several times slower).
func emitdBinary(b testing.TB) string {
	b.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "emitd-bench-bin")
		if err != nil {
			binError = err
			return
		}
		binDir = dir
		binPath = filepath.Join(dir, "emitd")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/emitd/emitd/cmd/emitd").CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("go build emitd: %v\n%s", err, out)
		}
	})
	if binError != nil {
		b.Fatal(binError)
	}
	return binPath
}

// ---- knobs ------------------------------------------------------------------

// envInt reads a positive integer knob.
func envInt(b testing.TB, name string, def int) int {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

func envDuration(b testing.TB, name string, def time.Duration) time.Duration {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration such as 10s", name, s)
	}
	return d
}

func envInts(b testing.TB, name string, def []int) []int {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want positive integers separated by commas", name, s)
		}
		out = append(out, n)
	}
	return out
}

// commandsPerRun is N of the throughput runs (BENCH_COMMANDS).
func commandsPerRun(b testing.TB) int { return envInt(b, "BENCH_COMMANDS", 20000) }

// ---- availability -----------------------------------------------------------

// unavailable skips the benchmark, or fails it when CI is set: in CI a
// missing broker is a broken machine, not a reason to report less.
func unavailable(b testing.TB, format string, args ...any) {
	b.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		b.Fatal(msg)
	}
	b.Skip(msg)
}

// needServer checks that the machine's broker listens on addr.
func needServer(b testing.TB, what, addr string) {
	b.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		unavailable(b, "%s is not running on %s (%v)", what, addr, err)
		return
	}
	c.Close()
}

// ---- names ------------------------------------------------------------------

var runSeq atomic.Int64

// newRunID names one measurement run. Topics, streams and queues carry it,
// so that a run never sees what an earlier one left on a shared server.
// Short: SQS queue names end at 80 characters.
func newRunID() string {
	return fmt.Sprintf("b%d-%d-%d", os.Getpid()%100000, time.Now().Unix()%100000, runSeq.Add(1))
}

// loadAverage is the machine's load (1, 5 and 15 minutes) as a run ends, for
// its log line: on a shared 2-core machine it tells a slow run from a slow
// daemon. cmd/benchtable sums these lines up under the table.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average: unknown"
	}
	f := strings.Fields(string(b))
	return "load average: " + strings.Join(f[:min(3, len(f))], " ")
}
