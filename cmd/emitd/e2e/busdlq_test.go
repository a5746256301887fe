package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/eventbridge/ebtest"
	"github.com/emitd/emitd/adapters/sqs"
)

// gate holds the PutEvents test server's answers while closed: an entry
// held is accepted by the bus (recorded as accepted) and its caller has not
// heard so yet, the moment between "the bus took it" and "delete it".
type gate struct {
	mu     sync.Mutex
	closed chan struct{} // nil: open
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = make(chan struct{})
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed != nil {
		close(g.closed)
		g.closed = nil
	}
}

func (g *gate) wait(ebtest.Entry) {
	g.mu.Lock()
	c := g.closed
	g.mu.Unlock()
	if c != nil {
		<-c
	}
}

// holder stands in front of the PutEvents test server and, while holding,
// keeps each PutEvents call from it (other calls pass) until its client
// gives up: a bus that has not taken the event yet. A call whose client is
// gone is never passed on.
type holder struct {
	mu      sync.Mutex
	holding bool
	held    int
	proxy   *httputil.ReverseProxy
}

func (h *holder) hold(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holding = on
}

func (h *holder) heldCalls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

func (h *holder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	hold := h.holding && r.Header.Get("X-Amz-Target") == "AWSEvents.PutEvents"
	if hold {
		h.held++
	}
	h.mu.Unlock()
	if hold {
		_, _ = io.Copy(io.Discard, r.Body) // read whole: only then does net/http see the client go
		<-r.Context().Done()
		h.mu.Lock()
		h.held--
		h.mu.Unlock()
		return
	}
	h.proxy.ServeHTTP(w, r)
}

// The re-emitter end to end, through the real binary: the daemon emits an
// event to EventBridge; a rule's target fails to take it, and EventBridge
// puts it in the target's dead-letter queue (here: the test, in the shape
// AWS documents). `emitd dlq list --from-queue` shows it without taking it;
// `emitd replay --from-queue` sends the exact event back to its bus.
//
// Crash safety: a message leaves the queue only after the bus took its
// event. The replay is killed twice, once while the bus holds the event
// unanswered (before it took it: nothing is sent, the message stays) and
// once after the bus took it but before the replay heard so (the message
// stays too, and goes again: at least once, same metadata.id). A third run
// finishes, and the loop guard then stops the event at --max-replays.
func TestReplayFromARuleTargetDeadLetterQueue(t *testing.T) {
	t.Parallel()
	endpoint := awstest.StartFauxqs(t)
	g := &gate{}
	eb := ebtest.New(ebtest.Options{Buses: []string{"reservation", "analytics"}, OnAccept: g.wait})
	t.Cleanup(func() { g.open(); eb.Close() })
	target, _ := neturl.Parse(eb.URL)
	h := &holder{proxy: httputil.NewSingleHostReverseProxy(target)}
	h.proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) } // a killed client's call
	front := httptest.NewServer(h)
	t.Cleanup(front.Close)
	s := newSetup(t, "aws.yaml", awsEnv(endpoint, front.URL))

	d := s.serve()
	s.send(`{"type":"CreateSlots","data":{"date":"2026-12-01","startHour":9,"count":1}}`)
	accepted := func(n int) []ebtest.Entry {
		t.Helper()
		for deadline := time.Now().Add(eventTimeout); ; time.Sleep(20 * time.Millisecond) {
			if acc := eb.Accepted(); len(acc) >= n {
				return acc
			}
			if time.Now().After(deadline) {
				t.Fatalf("EventBridge accepted %d entries, want %d", len(eb.Accepted()), n)
			}
		}
	}
	var original ebtest.Entry // the Created event on the domain bus, as the bus took it
	for _, e := range accepted(2) {
		if e.Bus == "reservation" {
			original = e
		}
	}
	d.stop(t)
	var det struct {
		Metadata struct{ ID string } `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(original.Detail), &det); err != nil || det.Metadata.ID == "" || original.DetailType != "Created" {
		t.Fatalf("the daemon's event: %+v (%v)", original, err)
	}

	// The rule target's dead-letter queue, with the event EventBridge could
	// not deliver and a message that is no event at all.
	awsCfg := awstest.AWSConfig(endpoint)
	c := awssqs.NewFromConfig(awsCfg)
	ctx := context.Background()
	q, err := c.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("ReservationBusDlq")})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(q.QueueUrl)
	rule := "arn:aws:events:us-east-1:000000000000:rule/reservation/OpenSlotRule"
	deadLetter := func(body string) string {
		t.Helper()
		str := func(v string) types.MessageAttributeValue {
			return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
		out, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body),
			MessageAttributes: map[string]types.MessageAttributeValue{
				"RULE_ARN": str(rule), "TARGET_ARN": str("arn:aws:lambda:us-east-1:000000000000:function:OpenSlot"),
				"ERROR_CODE": str("SDK_CLIENT_ERROR"), "ERROR_MESSAGE": str("Lambda function is throttled: Rate Exceeded."),
				"EXHAUSTED_RETRY_CONDITION": str("MaximumRetryAttempts"),
				"RETRY_ATTEMPTS":            {DataType: aws.String("Number"), StringValue: aws.String("3")},
			}})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.MessageId)
	}
	event := fmt.Sprintf(`{"version":"0","id":"7c3e1e0a-0000-4000-8000-000000000001","detail-type":%q,"source":%q,`+
		`"account":"000000000000","time":"2026-12-01T08:00:00Z","region":"us-east-1","resources":[],"detail":%s}`,
		original.DetailType, original.Source, original.Detail)
	good := deadLetter(event)
	poison := deadLetter("not an event")
	reader, err := sqs.OpenQueue(ctx, sqs.Config{AWSConfig: &awsCfg}, url)
	if err != nil {
		t.Fatal(err)
	}
	// inQueue waits until the message is visible in the queue again (a run
	// hides what it reads for --visibility-timeout).
	inQueue := func(id, what string) {
		t.Helper()
		for deadline := time.Now().Add(eventTimeout); time.Now().Before(deadline); {
			got, err := reader.Receive(ctx, 10, 0, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range got {
				if m.MessageID == id {
					return
				}
			}
		}
		t.Fatalf("%s: message %s is not in the queue", what, id)
	}
	reEmits := func() (n int) {
		for _, e := range eb.Accepted() {
			if e.Detail == original.Detail {
				n++
			}
		}
		return n - 1 // the daemon's own
	}

	out, stderr, code := s.runCLI("dlq", "list", "--config", s.cfg, "--from-queue", "ReservationBusDlq")
	if code != 0 || !strings.Contains(stderr, "none taken") {
		t.Fatalf("dlq list --from-queue: exit %d\n%s\n%s", code, out, stderr)
	}
	listed := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("dlq list printed %q", line)
		}
		listed[m["messageId"].(string)] = m
	}
	if l := listed[good]; l == nil || l["eventId"] != det.Metadata.ID || l["detailType"] != "Created" || l["rule"] != rule ||
		l["target"] != "arn:aws:lambda:us-east-1:000000000000:function:OpenSlot" || l["errorCode"] != "SDK_CLIENT_ERROR" ||
		l["errorMessage"] != "Lambda function is throttled: Rate Exceeded." || l["retryAttempts"] != 3.0 || l["bus"] != "reservation" {
		t.Errorf("listed %v", l)
	}
	if l := listed[poison]; l == nil || !strings.Contains(fmt.Sprint(l["problem"]), "not an EventBridge event") {
		t.Errorf("listed poison %v", l)
	}
	inQueue(good, "after dlq list")
	inQueue(poison, "after dlq list")

	_, stderr, code = s.runCLI("replay", "--config", s.cfg, "--from-queue", "ReservationBusDlq", "--dry-run")
	if code != 0 || !strings.Contains(stderr, "would replay 1, skipped 1, failed 0") || reEmits() != 0 {
		t.Fatalf("replay --dry-run: exit %d, %d re-emits\n%s", code, reEmits(), stderr)
	}

	replay := []string{"replay", "--config", s.cfg, "--from-queue", url, "--visibility-timeout", "2s"}
	kill := func(cmd *exec.Cmd) {
		t.Helper()
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(eventTimeout); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s after %s", what, eventTimeout)
			}
		}
	}

	// 1. Killed while its PutEvents call is on its way, before the bus took
	// the event.
	h.hold(true)
	run := s.command(replay...)
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor("PutEvents call on its way", func() bool { return h.heldCalls() > 0 })
	kill(run)
	waitFor("end of the held call", func() bool { return h.heldCalls() == 0 }) // its client is gone: never passed on
	h.hold(false)
	if reEmits() != 0 {
		t.Fatalf("a call whose client died was served")
	}
	inQueue(good, "killed before the bus took the event")

	// 2. Killed after the bus took the event, before the replay heard so.
	g.close()
	run = s.command(replay...)
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor("the bus taking the event", func() bool { return reEmits() == 1 })
	kill(run)
	g.open()
	inQueue(good, "killed after the bus took the event, before the delete")

	// Each killed run had counted its replay (a crash may count one that
	// never reached the bus: the guard errs on the side of stopping).
	out, _, _ = s.runCLI("dlq", "list", "--config", s.cfg, "--from-queue", url, "--id", det.Metadata.ID)
	if !strings.Contains(out, `"replays":2`) {
		t.Errorf("after two killed runs: %s", out)
	}

	// 3. To the end: the exact event once more, the message gone, the
	// poisoned one left with its reason.
	out, stderr, code = s.runCLI(replay...)
	if code != 0 || !strings.Contains(stderr, "replayed 1, skipped 1, failed 0") {
		t.Fatalf("replay --from-queue: exit %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(out, `"messageId":"`+poison+`"`) || !strings.Contains(out, "not an EventBridge event") {
		t.Errorf("no reason for the poisoned message:\n%s", out)
	}
	if reEmits() != 2 {
		t.Fatalf("%d re-emits, want 2 (the one of the killed run, and this one)", reEmits())
	}
	for _, e := range eb.Accepted()[2:] {
		if e.Bus != original.Bus || e.Source != original.Source || e.DetailType != original.DetailType || e.Detail != original.Detail ||
			!reflect.DeepEqual(e.Resources, original.Resources) || !e.Time.IsZero() {
			t.Errorf("re-emitted\n%+v\nwant the original\n%+v", e, original)
		}
	}
	inQueue(poison, "after the replay")
	got, _ := reader.Receive(ctx, 10, 0, time.Second)
	for _, m := range got {
		if m.MessageID == good {
			t.Errorf("the re-emitted message is still in the queue")
		}
	}

	// The event fails again and comes back: the loop guard (3 re-emits
	// counted) keeps it in the queue.
	again := deadLetter(event)
	out, stderr, code = s.runCLI("replay", "--config", s.cfg, "--from-queue", "ReservationBusDlq", "--id", det.Metadata.ID)
	if code != 0 || !strings.Contains(stderr, "replayed 0, skipped 1, failed 0") || !strings.Contains(out, "re-emitted 3 times already (--max-replays 3)") {
		t.Errorf("past the loop limit: exit %d\n%s\n%s", code, out, stderr)
	}
	inQueue(again, "past the loop limit")
	if reEmits() != 2 {
		t.Errorf("%d re-emits after the loop guard, want 2", reEmits())
	}

	_, stderr, code = s.runCLI("replay", "--config", s.cfg, "--from-queue", "ReservationBusDlq", "--kind", "event")
	if code != 2 || !strings.Contains(stderr, "--kind is for emitd's dead letters") {
		t.Errorf("--kind with --from-queue: exit %d %s", code, stderr)
	}
}
