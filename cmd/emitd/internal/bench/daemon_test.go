package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of waits for the daemon. Generous: they catch a stuck run, they
// are not measurements.
const (
	serveTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// daemon is one `emitd serve` process.
type daemon struct {
	cmd    *exec.Cmd
	log    *tailLog
	exited chan struct{} // closed once the process has exited
	err    error         // its exit status, once exited
}

// startDaemon runs `emitd serve --config cfgPath` and returns once it logs
// that it serves (its command subscription is up). It is stopped at the end
// of the benchmark at the latest.
func startDaemon(b *testing.B, cfgPath string, env []string) *daemon {
	b.Helper()
	cmd := exec.Command(emitdBinary(b), "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	d := &daemon{cmd: cmd, log: &tailLog{max: 64 << 10}, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start emitd: %v", err)
	}
	serving := make(chan struct{})
	go func() {
		var once sync.Once
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			d.log.add(line)
			if strings.Contains(line, `msg="emitd serving"`) {
				once.Do(func() { close(serving) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		d.err = cmd.Wait() // after the pipe is read to its end
		close(d.exited)
	}()
	b.Cleanup(func() { d.stop(b) })
	select {
	case <-serving:
		return d
	case <-d.exited:
		b.Fatalf("emitd exited before serving (%v):\n%s", d.err, d.log)
	case <-time.After(serveTimeout):
		b.Fatalf("emitd not serving after %s:\n%s", serveTimeout, d.log)
	}
	return nil
}

// stop sends SIGTERM and waits for the exit; a daemon that does not stop in
// time is killed. An unclean stop is reported, not measured.
func (d *daemon) stop(b *testing.B) {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		if d.err != nil {
			b.Errorf("emitd did not stop cleanly (%v):\n%s", d.err, d.log)
		}
	case <-time.After(stopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
		b.Errorf("emitd did not stop within %s of SIGTERM; killed:\n%s", stopTimeout, d.log)
	}
}

// peakRSS is the process's peak resident set size so far (VmHWM), in bytes.
func (d *daemon) peakRSS() (int64, error) {
	return vmHWM(d.cmd.Process.Pid)
}

func vmHWM(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmHWM(status)
}

// parseVmHWM reads "VmHWM:   123456 kB" from a /proc/<pid>/status text.
func parseVmHWM(status []byte) (int64, error) {
	for _, line := range bytes.Split(status, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmHWM line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmHWM line %q: %w", line, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no VmHWM line in /proc/<pid>/status")
}

// tailLog keeps the last max bytes of a process's log, for failure reports.
type tailLog struct {
	mu    sync.Mutex
	max   int
	lines []string
	size  int
}

func (l *tailLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	l.size += len(line) + 1
	for l.size > l.max && len(l.lines) > 1 {
		l.size -= len(l.lines[0]) + 1
		l.lines = l.lines[1:]
	}
}

func (l *tailLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
