// Package e2e runs the real emitd binary against each broker setup shipped
// in configs/: the daemon serves with the shipped file (only what the test
// machine forces changed: dataDir, addresses, names on shared servers), and
// the journey of docs/DOMAIN.md scenario 11 is driven with `emitd send` and read
// back with `emitd tail` (or the broker's own client where tail cannot read).
package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emitd/emitd/cmd/emitd/internal/catalog"
	"github.com/emitd/emitd/cmd/emitd/internal/catalog/catalogtest"
	"github.com/emitd/emitd/cmd/emitd/internal/testbin"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
)

// emitdBin is the binary under test, built once by TestMain.
var emitdBin string

func TestMain(m *testing.M) { testbin.Main(m, "..", &emitdBin) }

// Timeouts: generous for a loaded 2-core machine, small enough that a stuck
// test fails well within the package's budget.
const (
	startTimeout = 45 * time.Second
	eventTimeout = 30 * time.Second
	stopTimeout  = 30 * time.Second
)

// The schedule section of the shipped files, on and as the tests turn it off.
const (
	scheduleOn  = "schedule:                         # the time-based commands, fired by emitd itself\n  enabled: true"
	scheduleOff = "schedule:\n  enabled: false"
)

// setup is one broker setup under test.
type setup struct {
	t    *testing.T
	dir  string
	cfg  string   // path of the derived configuration
	env  []string // extra environment of every emitd process
	name string

	// Everything the emitd processes of this setup printed, for the
	// tests that search it (for secrets): the one-shot commands' output
	// and the long-running processes.
	printed strings.Builder
	procs   []*proc
}

// output is everything printed so far by this setup's emitd processes
// (stdout and stderr).
func (s *setup) output() string {
	out := s.printed.String()
	for _, p := range s.procs {
		p.mu.Lock()
		out += p.stdout.String() + p.stderr.String()
		p.mu.Unlock()
	}
	return out
}

// newSetup derives the configuration from configs/<file>: dataDir moves into
// a temporary directory, then each old->new replacement is applied (each
// must match once, so a change to the shipped file that the test relies on
// fails here, loudly).
func newSetup(t *testing.T, file string, env []string, replace ...string) *setup {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "configs", file))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := string(b)
	// Every daemon gets its own operations port, and the shipped schedule
	// is off (its firings would add commands to the journey); a test that
	// wants them replaces these again.
	replace = append([]string{"dataDir: ./data", "dataDir: " + filepath.Join(dir, "data"),
		"listen: 127.0.0.1:9464", fmt.Sprintf("listen: 127.0.0.1:%d", testbin.FreePort(t)),
		scheduleOn, scheduleOff}, replace...)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("configs/%s has no %q: update the test's derivation", file, replace[i])
		}
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	path := filepath.Join(dir, "emitd.yaml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return &setup{t: t, dir: dir, cfg: path, env: env, name: file}
}

func (s *setup) command(args ...string) *exec.Cmd {
	cmd := exec.Command(emitdBin, args...)
	cmd.Env = append(os.Environ(), s.env...)
	return cmd
}

// proc is a running emitd process whose stderr is kept for failure reports.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr strings.Builder
	stdout strings.Builder // every stdout line, also sent to lines
	lines  chan string     // stdout lines
	marked chan struct{}
	done   chan error    // the exit status, once
	exited chan struct{} // closed at exit
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// start runs emitd with args; marked closes when a stderr line contains mark.
func (s *setup) start(mark string, args ...string) *proc {
	t := s.t
	t.Helper()
	p := &proc{cmd: s.command(args...), lines: make(chan string, 1024), marked: make(chan struct{}), done: make(chan error, 1),
		exited: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.procs = append(s.procs, p)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		var once sync.Once
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.Contains(sc.Text(), mark) {
				once.Do(func() { close(p.marked) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		defer wg.Done()
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		wg.Wait() // Wait closes the pipes: read them to the end first
		p.done <- p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	select {
	case <-p.marked:
	case err := <-p.done:
		t.Fatalf("emitd %s exited before %q (%v):\n%s", strings.Join(args, " "), mark, err, p.log())
	case <-time.After(startTimeout):
		t.Fatalf("emitd %s: no %q after %s:\n%s", strings.Join(args, " "), mark, startTimeout, p.log())
	}
	return p
}

// serve starts `emitd serve` and waits until it consumes commands.
func (s *setup) serve() *proc {
	s.t.Helper()
	return s.start(`msg="emitd serving"`, "serve", "--config", s.cfg)
}

// stop sends SIGTERM and asserts a clean exit (status 0) in time.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	began := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("emitd did not exit 0 on SIGTERM (%v):\n%s", err, p.log())
		}
		t.Logf("emitd stopped cleanly in %s", time.Since(began).Round(time.Millisecond))
	case <-time.After(stopTimeout):
		t.Fatalf("emitd did not exit within %s of SIGTERM:\n%s", stopTimeout, p.log())
	}
}

// tail starts `emitd tail` (--bus NAME, or --results when bus is "") and
// waits until it has subscribed, so that nothing published afterwards is
// missed even on brokers that keep nothing for absent readers.
func (s *setup) tail(bus string, extra ...string) *proc {
	s.t.Helper()
	args := []string{"tail", "--log-level", "info", "--config", s.cfg}
	if bus == "" {
		args = append(args, "--results")
	} else {
		args = append(args, "--bus", bus)
	}
	return s.start("msg=subscribed", append(args, extra...)...)
}

// send runs `emitd send` with one command and returns its command id.
func (s *setup) send(command string) string {
	t := s.t
	t.Helper()
	cmd := s.command("send", "--config", s.cfg, command)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		s.printed.WriteString(out.String() + errb.String())
		if err != nil {
			t.Fatalf("emitd send %s: %v\n%s", command, err, errb.String())
		}
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		t.Fatalf("emitd send %s: no exit after %s\n%s", command, startTimeout, errb.String())
	}
	id := strings.TrimSpace(out.String())
	if id == "" || strings.Contains(id, "\n") {
		t.Fatalf("emitd send printed %q, want one command id", out.String())
	}
	return id
}

// runCLI runs emitd to the end and returns stdout, stderr and the exit code.
func (s *setup) runCLI(args ...string) (string, string, int) {
	s.t.Helper()
	cmd := s.command(args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	s.printed.WriteString(out.String() + errb.String())
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("run emitd %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// next returns the next stdout line of a tail.
func (p *proc) next(t *testing.T, what string) string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatalf("%s: tail ended:\n%s", what, p.log())
		}
		return line
	case <-time.After(eventTimeout):
		t.Fatalf("%s: nothing after %s:\n%s", what, eventTimeout, p.log())
	}
	return ""
}

// reachable says whether something listens on addr; a test that needs the
// machine's broker fails in CI without it and is skipped elsewhere.
func needServer(t *testing.T, what, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		return
	}
	msg := fmt.Sprintf("%s is not running on %s (%v): this test needs the machine's %s", what, addr, err, what)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// ---- the journey -------------------------------------------------------------

// entry is an envelope as `emitd tail` prints it (the EventBridge entry).
type entry struct {
	EventBusName string
	Source       string
	DetailType   string
	Detail       string
}

type detail struct {
	Metadata struct {
		ID            string `json:"id"`
		CorrelationID string `json:"correlationId"`
	} `json:"metadata"`
	Data map[string]any `json:"data"`
}

type outcome struct {
	CommandID     string   `json:"commandId"`
	CorrelationID string   `json:"correlationId"`
	Status        string   `json:"status"`
	EventIDs      []string `json:"eventIds"`
	Reason        string   `json:"reason"`
}

// events yields the envelopes that reach one bus, in order.
type events func(t *testing.T, what string) entry

// tailEvents reads what tail prints for bus, checking each line against
// the catalog: an entry, or a CloudEvent (then turned into its entry).
func tailEvents(p *proc, v *catalogtest.Validator, bus string) events {
	return func(t *testing.T, what string) entry {
		t.Helper()
		line := p.next(t, what)
		v.EventLine(t, bus, line)
		return entryOf(t, what, bus, line)
	}
}

// entryOf reads an entry, or a structured CloudEvent as the entry it
// carries (type = Source, data = Detail).
func entryOf(t *testing.T, what, bus, line string) entry {
	t.Helper()
	var e entry
	if strings.HasPrefix(line, `{"specversion":`) {
		var ce struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &ce); err != nil {
			t.Fatalf("%s: tail printed %q, not a CloudEvent: %v", what, line, err)
		}
		var d struct {
			Data struct {
				Event domain.EventName `json:"event"`
			} `json:"data"`
		}
		_ = json.Unmarshal(ce.Data, &d)
		dt, _ := domain.DetailTypeOf(d.Data.Event)
		return entry{EventBusName: bus, Source: ce.Type, DetailType: dt, Detail: string(ce.Data)}
	}
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("%s: tail printed %q, not an entry: %v", what, line, err)
	}
	return e
}

// validator checks messages against the catalog the binary prints for this
// setup (`emitd catalog --format jsonschema`), which must be the catalog
// the code makes for the same file.
func (s *setup) validator() *catalogtest.Validator {
	t := s.t
	t.Helper()
	out, stderr, code := s.runCLI("catalog", "--format", "jsonschema", "--config", s.cfg)
	if code != 0 {
		t.Fatalf("emitd catalog: exit %d\n%s", code, stderr)
	}
	cfg, err := configs.Load(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(cat.JSONSchema()) {
		t.Fatalf("emitd catalog printed another document than the catalog of %s", s.cfg)
	}
	return catalogtest.New(t, cat, []byte(out))
}

func parseDetail(t *testing.T, e entry) detail {
	t.Helper()
	var d detail
	if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
		t.Fatalf("Detail of %s is not JSON: %v\n%s", e.DetailType, err, e.Detail)
	}
	return d
}

// journey runs docs/DOMAIN.md scenario 11 (Create, Reserve, CheckIn, CheckOut,
// Reserve, Cancel), one command at a time (each waits for its outcome, so
// no broker's ordering between commands matters), and checks every envelope
// on both buses.
//
// Every command it sends, every outcome and every event it reads is checked
// against the catalog (v): the commands carry their ids, so that the bytes
// checked are the bytes `emitd send` puts on the queue.
func journey(t *testing.T, s *setup, v *catalogtest.Validator, results *proc, domainBus, analyticsBus string, domainEvents, analyticsEvents events) {
	t.Helper()
	defer func() { t.Logf("validated against the catalog: %s", v.Summary()) }()
	outcomes := map[string]outcome{}
	send := func(cmd string) string {
		t.Helper()
		b, _, err := domain.EnsureIDs([]byte(cmd))
		if err != nil {
			t.Fatal(err)
		}
		v.Command(t, b)
		return s.send(string(b))
	}
	await := func(id string) outcome {
		t.Helper()
		for {
			var o outcome
			line := results.next(t, "outcome of command "+id)
			v.Outcome(t, []byte(line))
			if err := json.Unmarshal([]byte(line), &o); err != nil {
				t.Fatalf("results: %q is not an outcome: %v", line, err)
			}
			outcomes[o.CommandID] = o
			if o.CommandID == id {
				if o.Status != "accepted" {
					t.Fatalf("command %s: outcome %+v, want accepted", id, o)
				}
				return o
			}
		}
	}
	ids := []string{send(`{"type":"CreateSlots","data":{"date":"2026-12-01","startHour":9,"count":1}}`)}
	await(ids[0])
	created := domainEvents(t, "Created on "+domainBus)
	slotID, _ := parseDetail(t, created).Data["slotId"].(string)
	if slotID == "" {
		t.Fatalf("Created carries no slotId: %s", created.Detail)
	}
	steps := []struct{ cmd, detailType, status, host string }{
		{fmt.Sprintf(`{"type":"ReserveSlot","data":{"slotId":%q,"hostName":"Sam Person"}}`, slotID), "Reserved", "RESERVED", "Sam Person"},
		{fmt.Sprintf(`{"type":"CheckIn","data":{"slotId":%q}}`, slotID), "CheckedIn", "CHECKED_IN", "Sam Person"},
		{fmt.Sprintf(`{"type":"CheckOut","data":{"slotId":%q}}`, slotID), "CheckedOut", "OPEN", ""},
		{fmt.Sprintf(`{"type":"ReserveSlot","data":{"slotId":%q,"hostName":"Alex Other"}}`, slotID), "Reserved", "RESERVED", "Alex Other"},
		{fmt.Sprintf(`{"type":"CancelSlot","data":{"slotId":%q}}`, slotID), "Cancelled", "OPEN", ""},
	}
	for _, st := range steps {
		id := send(st.cmd)
		ids = append(ids, id)
		await(id)
	}

	dom := []entry{created}
	for len(dom) < 6 {
		dom = append(dom, domainEvents(t, fmt.Sprintf("domain event %d on %s", len(dom)+1, domainBus)))
	}
	var ana []entry
	for len(ana) < 6 {
		ana = append(ana, analyticsEvents(t, fmt.Sprintf("analytics event %d on %s", len(ana)+1, analyticsBus)))
	}
	want := []string{"Created"}
	for _, st := range steps {
		want = append(want, st.detailType)
	}
	defer func() {
		if !t.Failed() {
			t.Logf("journey: %d commands accepted; %s carried %v, %s their %d analytics copies", len(ids), domainBus, want, analyticsBus, len(ana))
		}
	}()
	var gotTypes []string
	for _, e := range dom {
		gotTypes = append(gotTypes, e.DetailType)
	}
	if strings.Join(gotTypes, ",") != strings.Join(want, ",") {
		t.Fatalf("domain bus DetailTypes %v, want %v", gotTypes, want)
	}
	for i := range want {
		de, ae := dom[i], ana[i]
		dd, ad := parseDetail(t, de), parseDetail(t, ae)
		if ae.DetailType != want[i] {
			t.Errorf("analytics event %d: DetailType %s, want %s", i+1, ae.DetailType, want[i])
		}
		if de.EventBusName != domainBus || ae.EventBusName != analyticsBus {
			t.Errorf("event %d: EventBusName %q and %q, want %q and %q", i+1, de.EventBusName, ae.EventBusName, domainBus, analyticsBus)
		}
		if wantSrc := "reservation.slotreservation." + strings.ToLower(want[i]); de.Source != wantSrc || ae.Source != wantSrc {
			t.Errorf("event %d: Source %q and %q, want %q", i+1, de.Source, ae.Source, wantSrc)
		}
		if dd.Data["slotId"] != slotID || ad.Data["slotId"] != slotID {
			t.Errorf("event %d: slotId %v / %v, want %s", i+1, dd.Data["slotId"], ad.Data["slotId"], slotID)
		}
		if _, has := dd.Data["slotStatus"]; !has {
			t.Errorf("event %d: domain event lacks slotStatus", i+1)
		}
		if _, has := ad.Data["slotStatus"]; has {
			t.Errorf("event %d: analytics copy carries slotStatus", i+1)
		}
		if i > 0 {
			st := steps[i-1]
			if dd.Data["slotStatus"] != st.status || dd.Data["hostName"] != st.host {
				t.Errorf("event %d (%s): slotStatus %v hostName %v, want %s %q", i+1, want[i], dd.Data["slotStatus"], dd.Data["hostName"], st.status, st.host)
			}
		}
		o := outcomes[ids[i]]
		if dd.Metadata.CorrelationID != o.CorrelationID || ad.Metadata.CorrelationID != o.CorrelationID {
			t.Errorf("event %d: correlation ids %s / %s, the command's is %s", i+1, dd.Metadata.CorrelationID, ad.Metadata.CorrelationID, o.CorrelationID)
		}
		if dd.Metadata.ID == ad.Metadata.ID {
			t.Errorf("event %d: the analytics copy reuses the domain event id %s", i+1, dd.Metadata.ID)
		}
		if len(o.EventIDs) != 2 || o.EventIDs[0] != dd.Metadata.ID || o.EventIDs[1] != ad.Metadata.ID {
			t.Errorf("event %d: outcome lists %v, buses carry %s and %s", i+1, o.EventIDs, dd.Metadata.ID, ad.Metadata.ID)
		}
	}
}
