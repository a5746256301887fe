package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/cmd/emitd/internal/testbin"
)

// emitdBin is the real binary, built once for the tests that run it as a
// process (signals, crashes, the CLI as a user types it).
var emitdBin string

func TestMain(m *testing.M) { testbin.Main(m, ".", &emitdBin) }

var freePort = testbin.FreePort

// writeConfig writes the embedded default with dataDir and port changed.
func writeConfig(t testing.TB, dir string, port int) string {
	t.Helper()
	b, err := os.ReadFile("../../configs/embedded.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "dataDir: ./data", "dataDir: "+filepath.Join(dir, "data"), 1)
	s = strings.Replace(s, embeddedPort, fmt.Sprintf("port: %d", port), 1)
	s = offOperations(t, s)
	path := filepath.Join(dir, "emitd.yaml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// offOperations turns the shipped schedule off and moves the operations
// listener to a free port: tests run daemons side by side, and a firing of
// the shipped schedule would add commands of its own.
func offOperations(t testing.TB, s string) string {
	t.Helper()
	for _, r := range [][2]string{
		{"listen: 127.0.0.1:9464", fmt.Sprintf("listen: 127.0.0.1:%d", freePort(t))},
		{"schedule:                         # the time-based commands, fired by emitd itself\n  enabled: true",
			"schedule:\n  enabled: false"},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("the shipped configuration has no %q: update the tests' derivation", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return s
}

// proc is one emitd process.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs strings.Builder
	done chan error
}

func (p *proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// startServe runs `emitd serve --config cfg [args]` and waits until it
// serves.
func startServe(t *testing.T, cfg string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(emitdBin, append([]string{"serve", "--config", cfg}, args...)...), done: make(chan error, 1)}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		var once sync.Once
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.Contains(sc.Text(), `msg="emitd serving"`) {
				once.Do(func() { close(serving) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case <-serving:
	case err := <-p.done:
		t.Fatalf("emitd serve exited at start (%v):\n%s", err, p.Log())
	case <-time.After(60 * time.Second):
		t.Fatalf("emitd serve not serving after 60s:\n%s", p.Log())
	}
	return p
}

// stop sends sig and returns the exit error (nil: exit 0).
func (p *proc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("emitd did not exit on %v:\n%s", sig, p.Log())
		return nil
	}
}

// run runs an emitd subcommand and returns stdout, stderr and the exit code.
func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, emitdBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run emitd %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// jsonLines decodes one JSON object per line.
func jsonLines[T any](t *testing.T, s string) []T {
	t.Helper()
	var out []T
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		out = append(out, v)
	}
	return out
}

// embeddedPort is the port line of the shipped embedded.yaml.
var embeddedPort = fmt.Sprintf("port: %d", natsjs.DefaultEmbeddedPort)
