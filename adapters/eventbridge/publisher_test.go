package eventbridge_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/eventbridge"
	"github.com/emitd/emitd/adapters/eventbridge/ebtest"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

const bus = "reservation"

// awsEnv gives the SDK's default chain static credentials and a region, and
// hides any AWS files or endpoint settings of the machine.
func awsEnv(tb testing.TB) { awstest.SetEnv(tb, nil) }

func setup(tb testing.TB, opts ebtest.Options, cfg eventbridge.Config) (*ebtest.Server, *eventbridge.Publisher) {
	tb.Helper()
	awsEnv(tb)
	if opts.Buses == nil {
		opts.Buses = []string{bus, "analytics"}
	}
	s := ebtest.New(opts)
	tb.Cleanup(s.Close)
	cfg.Endpoint = s.URL
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff, cfg.MaxBackoff = time.Millisecond, 5*time.Millisecond
	}
	p, err := eventbridge.NewPublisher(context.Background(), cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return s, p
}

func envelope(busName string, i int, extra string) domain.Envelope {
	id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	return domain.Envelope{
		EventBusName: busName,
		Source:       "emitd.reservation",
		DetailType:   "SlotReserved",
		Detail:       fmt.Sprintf(`{"metadata":{"id":%q},"data":{"n":%d%s}}`, id, i, extra),
		ID:           id,
	}
}

func messages(tb testing.TB, envs ...domain.Envelope) []*message.Message {
	tb.Helper()
	msgs := make([]*message.Message, len(envs))
	for i, env := range envs {
		m, err := publisher.ToMessage(env)
		if err != nil {
			tb.Fatal(err)
		}
		msgs[i] = m
	}
	return msgs
}

func envelopes(n int) []domain.Envelope {
	envs := make([]domain.Envelope, n)
	for i := range envs {
		envs[i] = envelope(bus, i, "")
	}
	return envs
}

// acceptedDetails maps each accepted Detail to how often it was accepted.
func acceptedDetails(s *ebtest.Server) map[string]int {
	m := map[string]int{}
	for _, e := range s.Accepted() {
		m[e.Detail]++
	}
	return m
}

func batchError(t *testing.T, err error) *publisher.BatchError {
	t.Helper()
	be, ok := publisher.AsBatchError(err)
	if !ok {
		t.Fatalf("want *publisher.BatchError, got %v", err)
	}
	return be
}

func entryCode(t *testing.T, err error) string {
	t.Helper()
	var ee *eventbridge.EntryError
	if !errors.As(err, &ee) {
		t.Fatalf("want *eventbridge.EntryError, got %v", err)
	}
	return ee.Code
}

func equalInts(a, b []int) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func TestPublish25In3CallsInOrder(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{})
	envs := envelopes(25)
	if err := p.Publish(bus, messages(t, envs...)...); err != nil {
		t.Fatal(err)
	}
	if got := s.Calls(); !equalInts(got, []int{10, 10, 5}) {
		t.Fatalf("calls %v, want [10 10 5]", got)
	}
	acc := s.Accepted()
	if len(acc) != 25 {
		t.Fatalf("accepted %d", len(acc))
	}
	for i, e := range acc {
		if e.Detail != envs[i].Detail || e.Bus != bus || e.Source != envs[i].Source || e.DetailType != envs[i].DetailType {
			t.Fatalf("accepted[%d] = %+v, want %+v", i, e, envs[i])
		}
		if !e.Time.IsZero() {
			t.Fatalf("Time set on entry %d", i)
		}
	}
}

func TestOnlyFailedEntriesAreResent(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{})
	envs := envelopes(25)
	envs[3] = envelope(bus, 3, `,"fail":"once"`)
	envs[7] = envelope(bus, 7, `,"fail":"once"`)
	s.FailNextEntries(2, ebtest.CodeThrottling, `"fail":"once"`)

	if err := p.Publish(bus, messages(t, envs...)...); err != nil {
		t.Fatal(err)
	}
	calls := s.Calls()
	if len(calls) < 2 || calls[1] != 2 {
		t.Fatalf("calls %v: the second call must re-send exactly the 2 failed entries", calls)
	}
	if !equalInts(calls, []int{10, 2, 10, 5}) {
		t.Fatalf("calls %v, want [10 2 10 5]", calls)
	}
	resent := s.Received()[10:12]
	if resent[0].Detail != envs[3].Detail || resent[1].Detail != envs[7].Detail {
		t.Fatalf("re-sent %q and %q", resent[0].Detail, resent[1].Detail)
	}
	got := acceptedDetails(s)
	if len(got) != 25 || len(s.Accepted()) != 25 {
		t.Fatalf("accepted %d distinct of %d", len(got), len(s.Accepted()))
	}
	for _, env := range envs {
		if got[env.Detail] != 1 {
			t.Fatalf("event %s accepted %d times", env.ID, got[env.Detail])
		}
	}
}

func TestPermanentEntryErrorsAreRefusedNotRetried(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{})
	envs := envelopes(6)
	envs[1].Detail = `not json`               // MalformedDetail
	envs[2].Source = ""                       // InvalidArgument
	envs[4] = envelope(bus, 4, `,"odd":true`) // a code the adapter does not know
	s.FailEntriesIf("SomeNewEntryError", func(e ebtest.Entry) bool { return strings.Contains(e.Detail, `"odd"`) })

	err := p.Publish(bus, messages(t, envs...)...)
	be := batchError(t, err)
	if len(be.Pending) != 0 || len(be.Refused) != 3 {
		t.Fatalf("refused %v pending %v", be.Refused, be.Pending)
	}
	want := map[string]string{envs[1].ID: "MalformedDetail", envs[2].ID: "InvalidArgument", envs[4].ID: "SomeNewEntryError"}
	for id, code := range want {
		if got := entryCode(t, be.Refused[id]); got != code {
			t.Errorf("event %s: code %s, want %s (%v)", id, got, code, be.Refused[id])
		}
		if !strings.Contains(be.Refused[id].Error(), id) {
			t.Errorf("error %q does not name the event", be.Refused[id])
		}
	}
	if got := s.Calls(); !equalInts(got, []int{6}) {
		t.Fatalf("calls %v: refused entries must not be re-sent", got)
	}
	if n := len(s.Accepted()); n != 3 {
		t.Fatalf("accepted %d, want the 3 good ones", n)
	}
}

// A bus that does not exist fails every entry alike: nothing is the entry's
// fault, so nothing is dead-lettered; the events wait for the bus.
func TestUnknownBusIsPendingWhenTheServiceSaysSo(t *testing.T) {
	s, p := setup(t, ebtest.Options{RejectUnknownBus: true}, eventbridge.Config{})
	envs := []domain.Envelope{envelope("reservations", 0, ""), envelope("reservations", 1, "")}
	be := batchError(t, p.Publish("reservations", messages(t, envs...)...))
	if len(be.Refused) != 0 || len(be.Pending) != 2 || entryCode(t, be.Pending[envs[0].ID]) != "ResourceNotFoundException" {
		t.Fatalf("refused %v pending %v", be.Refused, be.Pending)
	}
	if got := s.Calls(); !equalInts(got, []int{2}) {
		t.Fatalf("calls %v", got)
	}
	if err := p.CheckBus(context.Background(), "reservations"); err == nil {
		t.Fatal("CheckBus: want an error for a bus that does not exist")
	}
	if err := p.CheckBus(context.Background(), bus); err != nil {
		t.Fatalf("CheckBus(%s): %v", bus, err)
	}
}

func TestOversizedEntryRefusedBeforeSending(t *testing.T) {
	s, p := setup(t, ebtest.Options{MaxEntryBytes: 2048}, eventbridge.Config{MaxEntryBytes: 2048})
	envs := envelopes(5)
	big := envelope(bus, 2, `,"pad":"`+strings.Repeat("x", 2100)+`"`)
	envs[2] = big

	be := batchError(t, p.Publish(bus, messages(t, envs...)...))
	if len(be.Pending) != 0 || len(be.Refused) != 1 {
		t.Fatalf("refused %v pending %v", be.Refused, be.Pending)
	}
	err := be.Refused[big.ID]
	if entryCode(t, err) != eventbridge.CodeEntryTooLarge || !strings.Contains(err.Error(), big.ID) || !strings.Contains(err.Error(), "2048") {
		t.Fatalf("error %v", err)
	}
	for _, e := range s.Received() {
		if e.Detail == big.Detail {
			t.Fatal("the server saw the oversized entry")
		}
	}
	if n := len(s.Accepted()); n != 4 {
		t.Fatalf("accepted %d, want 4", n)
	}
}

// AWS limits the total of a request's entries: entries that fit one by one
// must be split into calls that fit.
func TestCallsStayWithinTheSizeLimit(t *testing.T) {
	s, p := setup(t, ebtest.Options{MaxEntryBytes: 2048}, eventbridge.Config{MaxEntryBytes: 2048})
	envs := make([]domain.Envelope, 6)
	for i := range envs {
		envs[i] = envelope(bus, i, `,"pad":"`+strings.Repeat("x", 700)+`"`) // ~800 bytes each
	}
	if err := p.Publish(bus, messages(t, envs...)...); err != nil {
		t.Fatal(err)
	}
	if got := s.Calls(); !equalInts(got, []int{2, 2, 2}) {
		t.Fatalf("calls %v, want [2 2 2]", got)
	}
	if n := len(s.Accepted()); n != 6 {
		t.Fatalf("accepted %d", n)
	}
}

// If the service's limit is lower than the configured one, the whole call is
// refused; the adapter then sends entries one by one, so only the entry that
// is too large for the service is refused.
func TestServiceLimitLowerThanConfigured(t *testing.T) {
	s, p := setup(t, ebtest.Options{MaxEntryBytes: 1000}, eventbridge.Config{MaxEntryBytes: 4096})
	envs := envelopes(3)
	big := envelope(bus, 1, `,"pad":"`+strings.Repeat("x", 1200)+`"`)
	envs[1] = big
	be := batchError(t, p.Publish(bus, messages(t, envs...)...))
	if len(be.Pending) != 0 || len(be.Refused) != 1 || entryCode(t, be.Refused[big.ID]) != "ValidationException" {
		t.Fatalf("refused %v pending %v", be.Refused, be.Pending)
	}
	if got := s.Calls(); !equalInts(got, []int{3, 1, 1, 1}) {
		t.Fatalf("calls %v", got)
	}
	if n := len(s.Accepted()); n != 2 {
		t.Fatalf("accepted %d", n)
	}
}

func TestWholeRequest500ThenRecovery(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{})
	s.FailNextRequests(1, http.StatusInternalServerError, ebtest.CodeInternalFailure)
	envs := envelopes(3)
	if err := p.Publish(bus, messages(t, envs...)...); err != nil {
		t.Fatal(err)
	}
	if got := s.Calls(); !equalInts(got, []int{3, 3}) {
		t.Fatalf("calls %v, want the failed call then its retry", got)
	}
	if n := len(s.Accepted()); n != 3 {
		t.Fatalf("accepted %d", n)
	}
}

func TestWholeRequestThrottledThenRecovery(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{})
	s.FailNextRequests(2, http.StatusBadRequest, ebtest.CodeThrottling)
	if err := p.Publish(bus, messages(t, envelopes(12)...)...); err != nil {
		t.Fatal(err)
	}
	if got := s.Calls(); !equalInts(got, []int{10, 10, 10, 2}) {
		t.Fatalf("calls %v", got)
	}
	if n := len(s.Accepted()); n != 12 {
		t.Fatalf("accepted %d", n)
	}
}

func TestOutageLeavesEverythingPending(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{MaxAttempts: 3})
	s.FailNextRequests(100, http.StatusInternalServerError, ebtest.CodeInternalFailure)
	envs := envelopes(15)
	be := batchError(t, p.Publish(bus, messages(t, envs...)...))
	if len(be.Refused) != 0 || len(be.Pending) != 15 {
		t.Fatalf("refused %d pending %d", len(be.Refused), len(be.Pending))
	}
	if got := s.Calls(); !equalInts(got, []int{10, 10, 10}) {
		t.Fatalf("calls %v: the SDK tries the first call MaxAttempts times, the second chunk is not sent", got)
	}
	// Recovery: the relay publishes the pending ones again.
	s.ClearFaults()
	if err := p.Publish(bus, messages(t, envs...)...); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Accepted()); n != 15 {
		t.Fatalf("accepted %d", n)
	}
}

// An outage that starts while failed entries are being re-sent leaves
// pending only what was not delivered: the re-sent entry and the chunks not
// yet sent, not the entries already accepted.
func TestOutageDuringRetryPendsOnlyUndelivered(t *testing.T) {
	var s *ebtest.Server
	var once sync.Once
	s, p := setup(t, ebtest.Options{OnAccept: func(ebtest.Entry) {
		once.Do(func() { s.FailNextRequests(100, http.StatusInternalServerError, ebtest.CodeInternalFailure) })
	}}, eventbridge.Config{MaxAttempts: 3})
	envs := envelopes(15)
	envs[0] = envelope(bus, 0, `,"fail":"once"`)
	s.FailNextEntries(1, ebtest.CodeThrottling, `"fail":"once"`)

	be := batchError(t, p.Publish(bus, messages(t, envs...)...))
	if got := s.Calls(); !equalInts(got, []int{10, 1, 1, 1}) {
		t.Fatalf("calls %v, want [10 1 1 1]", got)
	}
	if len(be.Refused) != 0 || len(be.Pending) != 6 {
		t.Fatalf("refused %v pending %v", be.Refused, be.Pending)
	}
	for _, i := range []int{0, 10, 11, 12, 13, 14} {
		if be.Pending[envs[i].ID] == nil {
			t.Errorf("event %d not pending", i)
		}
	}
	if n := len(s.Accepted()); n != 9 {
		t.Fatalf("accepted %d, want 9", n)
	}
}

func TestEntryStillFailingAfterMaxAttemptsIsPending(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{MaxAttempts: 3})
	envs := envelopes(4)
	envs[2] = envelope(bus, 2, `,"hot":true`)
	s.FailEntriesIf(ebtest.CodeInternalFailure, func(e ebtest.Entry) bool { return strings.Contains(e.Detail, `"hot"`) })
	be := batchError(t, p.Publish(bus, messages(t, envs...)...))
	if len(be.Refused) != 0 || len(be.Pending) != 1 || entryCode(t, be.Pending[envs[2].ID]) != "InternalFailure" {
		t.Fatalf("refused %v pending %v", be.Refused, be.Pending)
	}
	if got := s.Calls(); !equalInts(got, []int{4, 1, 1}) {
		t.Fatalf("calls %v, want [4 1 1] (3 attempts)", got)
	}
	if n := len(s.Accepted()); n != 3 {
		t.Fatalf("accepted %d", n)
	}
}

func TestTopicMustMatchEventBusName(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{})
	envs := []domain.Envelope{envelope(bus, 0, ""), envelope("analytics", 1, "")}
	msgs := messages(t, envs...)
	notEntry := message.NewMessage("bad-payload", []byte("nope"))
	be := batchError(t, p.Publish(bus, append(msgs, notEntry)...))
	if len(be.Refused) != 2 || entryCode(t, be.Refused[envs[1].ID]) != eventbridge.CodeBusMismatch ||
		entryCode(t, be.Refused["bad-payload"]) != eventbridge.CodeNotAnEntry {
		t.Fatalf("refused %v", be.Refused)
	}
	if n := len(s.Accepted()); n != 1 {
		t.Fatalf("accepted %d", n)
	}
}

func TestCloseStopsPublishing(t *testing.T) {
	_, p := setup(t, ebtest.Options{}, eventbridge.Config{})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(bus, messages(t, envelopes(1)...)...); !errors.Is(err, eventbridge.ErrClosed) {
		t.Fatalf("got %v", err)
	}
}

func TestCloseInterruptsBackoff(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{BaseBackoff: time.Hour, MaxBackoff: time.Hour})
	s.FailEntriesIf(ebtest.CodeThrottling, func(ebtest.Entry) bool { return true })
	done := make(chan error, 1)
	go func() { done <- p.Publish(bus, messages(t, envelopes(2)...)...) }()
	for len(s.Calls()) == 0 {
		time.Sleep(time.Millisecond)
	}
	_ = p.Close()
	be := batchError(t, <-done)
	if len(be.Pending) != 2 {
		t.Fatalf("pending %v", be.Pending)
	}
}

func TestEndpointFromEnvironment(t *testing.T) {
	awsEnv(t)
	s := ebtest.New(ebtest.Options{})
	defer s.Close()
	t.Setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", s.URL)
	p, err := eventbridge.NewPublisher(context.Background(), eventbridge.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Publish(bus, messages(t, envelopes(1)...)...); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Accepted()); n != 1 {
		t.Fatalf("accepted %d", n)
	}
}

func TestErrCannotTail(t *testing.T) {
	msg := eventbridge.ErrCannotTail.Error()
	for _, w := range []string{"cannot be read back", "rule", "SQS", "CloudWatch Logs"} {
		if !strings.Contains(msg, w) {
			t.Errorf("ErrCannotTail %q lacks %q", msg, w)
		}
	}
}

func BenchmarkPublish(b *testing.B) {
	s, p := setup(b, ebtest.Options{}, eventbridge.Config{})
	envs := make([]domain.Envelope, 1000)
	for i := range envs {
		envs[i] = envelope(bus, i, `,"slotId":"slot-`+fmt.Sprint(i%50)+`","at":"2026-01-01T10:00:00Z"`)
	}
	msgs := messages(b, envs...)
	b.ResetTimer()
	for b.Loop() {
		if err := p.Publish(bus, msgs...); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "entries/s")
	if n := len(s.Accepted()); n != b.N*len(msgs) {
		b.Fatalf("accepted %d", n)
	}
}

// BenchmarkPublishParallel publishes batches of 100 envelopes from several
// goroutines at once (the Publisher is safe for concurrent use).
func BenchmarkPublishParallel(b *testing.B) {
	_, p := setup(b, ebtest.Options{}, eventbridge.Config{})
	msgs := messages(b, envelopes(100)...)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := p.Publish(bus, msgs...); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "entries/s")
}

// withContext gives every message the context, as the relay does.
func withContext(ctx context.Context, msgs []*message.Message) []*message.Message {
	for _, m := range msgs {
		m.SetContext(ctx)
	}
	return msgs
}

// publishAsync runs Publish and returns what it returned, failing the test
// when it has not returned within limit: a hang must be a failure, not a
// test that never ends.
func publishAsync(t *testing.T, p *eventbridge.Publisher, limit time.Duration, msgs []*message.Message) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Publish(bus, msgs...) }()
	out := make(chan error, 1)
	go func() {
		select {
		case err := <-done:
			out <- err
		case <-time.After(limit):
			out <- fmt.Errorf("Publish has not returned after %s", limit)
		}
	}()
	return out
}

func allPending(t *testing.T, err error, envs []domain.Envelope) {
	t.Helper()
	be := batchError(t, err)
	if len(be.Refused) != 0 || len(be.Pending) != len(envs) {
		t.Fatalf("refused %v, %d pending; want all %d pending", be.Refused, len(be.Pending), len(envs))
	}
	for _, env := range envs {
		if be.Pending[env.ID] == nil {
			t.Errorf("event %s not pending", env.ID)
		}
	}
}

// The relay's shutdown flush gives its messages a deadline: a stalled
// endpoint must not hold Publish past it. Everything undelivered is pending,
// so it stays in the outbox.
func TestPublishEndsWithTheMessagesContext(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{})
	s.Stall()
	envs := envelopes(15) // two calls: the second is never sent
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := <-publishAsync(t, p, 10*time.Second, withContext(ctx, messages(t, envs...)))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Publish returned %s after its context's 300ms deadline", d)
	}
	allPending(t, err, envs)
	if be := batchError(t, err); !errors.Is(be.Pending[envs[0].ID], context.DeadlineExceeded) {
		t.Errorf("pending because %v, want the context's deadline", be.Pending[envs[0].ID])
	}
	if len(s.Accepted()) != 0 {
		t.Fatal("a stalled endpoint accepted entries")
	}
}

// A backoff between attempts ends with the messages' context too.
func TestBackoffEndsWithTheMessagesContext(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{BaseBackoff: time.Hour, MaxBackoff: time.Hour})
	s.FailEntriesIf(ebtest.CodeThrottling, func(ebtest.Entry) bool { return true })
	envs := envelopes(3)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	allPending(t, <-publishAsync(t, p, 10*time.Second, withContext(ctx, messages(t, envs...))), envs)
	if got := s.Calls(); !equalInts(got, []int{3}) {
		t.Fatalf("calls %v, want the first attempt only", got)
	}
}

// Close ends a Publish stalled in a call, and does not itself hang.
func TestCloseEndsAStalledPublish(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{})
	s.Stall()
	envs := envelopes(2)
	result := publishAsync(t, p, 10*time.Second, messages(t, envs...)) // no deadline of its own
	for s.Stalled() == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs while a call is stalled")
	}
	err := <-result
	allPending(t, err, envs)
	if be := batchError(t, err); !errors.Is(be.Pending[envs[0].ID], eventbridge.ErrClosed) {
		t.Errorf("pending because %v, want ErrClosed", be.Pending[envs[0].ID])
	}
}

// Without any deadline, the HTTP client's response-header timeout ends a
// call to an endpoint that never answers; the SDK's attempts all time out
// and the entries stay pending.
func TestStalledEndpointTimesOut(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{HTTPTimeout: 100 * time.Millisecond, MaxAttempts: 2})
	s.Stall()
	envs := envelopes(4)
	allPending(t, <-publishAsync(t, p, 15*time.Second, messages(t, envs...)), envs)
}

// Messages whose context has ended already are not sent at all.
func TestPublishWithAnEndedContextSendsNothing(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	envs := envelopes(3)
	allPending(t, p.Publish(bus, withContext(ctx, messages(t, envs...))...), envs)
	if got := s.Calls(); len(got) != 0 {
		t.Fatalf("calls %v, want none", got)
	}
}

// Authorisation failures are the bus's, not the entry's: an IAM or bus
// policy that denies a source or a detail type would otherwise dead-letter
// every event of the outbox, one by one. They stay pending, are not tried
// again within the call, and only the entry that is wrong itself is refused.
func TestAuthorisationEntryErrorsArePending(t *testing.T) {
	for _, code := range []string{ebtest.CodeAccessDenied, ebtest.CodeNotAuthSource, ebtest.CodeNotAuthDetailType,
		"NotAuthorizedForEventBusException", "UnauthorizedOperation", "KMSAccessDeniedException"} {
		t.Run(code, func(t *testing.T) {
			s, p := setup(t, ebtest.Options{}, eventbridge.Config{})
			envs := envelopes(5)
			envs[1] = envelope(bus, 1, `,"deny":true`)
			envs[3] = envelope(bus, 3, `,"deny":true`)
			envs[4].Detail = `not json` // refused: the entry itself is wrong
			s.FailEntriesIf(code, func(e ebtest.Entry) bool { return strings.Contains(e.Detail, `"deny"`) })

			be := batchError(t, p.Publish(bus, messages(t, envs...)...))
			if len(be.Pending) != 2 || len(be.Refused) != 1 || be.Refused[envs[4].ID] == nil {
				t.Fatalf("refused %v pending %v; want the 2 denied pending, the malformed one refused", be.Refused, be.Pending)
			}
			for _, i := range []int{1, 3} {
				if got := entryCode(t, be.Pending[envs[i].ID]); got != code {
					t.Errorf("event %d: code %s, want %s", i, got, code)
				}
			}
			if got := s.Calls(); !equalInts(got, []int{5}) {
				t.Fatalf("calls %v: an entry denied for the bus is not re-sent in the same Publish", got)
			}
			if n := len(s.Accepted()); n != 2 {
				t.Fatalf("accepted %d, want 2", n)
			}
		})
	}
}

// A whole call refused for authorisation, throttling or a missing bus is a
// failure of the bus: everything is pending, nothing refused, and the entries
// are not sent one by one (that is for a request the service finds invalid).
func TestWholeCallBusFailuresArePending(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
	}{
		{http.StatusBadRequest, ebtest.CodeAccessDenied},
		{http.StatusForbidden, "UnrecognizedClientException"},
		{http.StatusBadRequest, ebtest.CodeThrottling},
		{http.StatusBadRequest, ebtest.CodeResourceNotFound},
		{http.StatusBadRequest, ebtest.CodeNotAuthSource},
	} {
		t.Run(c.code, func(t *testing.T) {
			s, p := setup(t, ebtest.Options{}, eventbridge.Config{MaxAttempts: 2})
			s.FailNextRequests(100, c.status, c.code)
			envs := envelopes(12)
			be := batchError(t, p.Publish(bus, messages(t, envs...)...))
			if len(be.Refused) != 0 || len(be.Pending) != 12 {
				t.Fatalf("refused %v, %d pending; want all 12 pending", be.Refused, len(be.Pending))
			}
			for _, n := range s.Calls() {
				if n != 10 {
					t.Fatalf("calls %v: the first chunk only, never entry by entry", s.Calls())
				}
			}
		})
	}
}
