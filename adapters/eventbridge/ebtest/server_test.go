package ebtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"

	"github.com/emitd/emitd/adapters/eventbridge/ebtest"
)

// client is the real SDK client pointed at s, without SDK retries, so each
// API call is exactly one request.
func client(s *ebtest.Server) *eventbridge.Client {
	return eventbridge.New(eventbridge.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(s.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		RetryMaxAttempts: 1,
	})
}

func entry(bus, detail string) types.PutEventsRequestEntry {
	return types.PutEventsRequestEntry{
		EventBusName: aws.String(bus), Source: aws.String("emitd.test"),
		DetailType: aws.String("SlotReserved"), Detail: aws.String(detail),
	}
}

func apiCode(t *testing.T, err error) string {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an API error, got %v", err)
	}
	return ae.ErrorCode()
}

func TestPutEventsAcceptsAndRecords(t *testing.T) {
	s := ebtest.New(ebtest.Options{Buses: []string{"reservation"}})
	defer s.Close()
	e := entry("reservation", `{"n":1}`)
	e.Resources = []string{"arn:aws:x"}
	arnBus := entry(s.BusARN("reservation"), `{"n":2}`)
	out, err := client(s).PutEvents(context.Background(), &eventbridge.PutEventsInput{
		Entries: []types.PutEventsRequestEntry{e, arnBus}})
	if err != nil {
		t.Fatal(err)
	}
	if out.FailedEntryCount != 0 || len(out.Entries) != 2 || aws.ToString(out.Entries[0].EventId) == "" {
		t.Fatalf("reply %+v", out)
	}
	acc := s.Accepted()
	if len(acc) != 2 || acc[0].Detail != `{"n":1}` || acc[1].Bus != "reservation" || acc[0].Resources[0] != "arn:aws:x" ||
		acc[0].EventID != aws.ToString(out.Entries[0].EventId) {
		t.Fatalf("accepted %+v", acc)
	}
	if got := s.Calls(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("calls %v", got)
	}
}

func TestPutEventsOver10EntriesIsValidationException(t *testing.T) {
	s := ebtest.New(ebtest.Options{})
	defer s.Close()
	var entries []types.PutEventsRequestEntry
	for i := range 11 {
		entries = append(entries, entry("b", fmt.Sprintf(`{"i":%d}`, i)))
	}
	_, err := client(s).PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: entries})
	if code := apiCode(t, err); code != "ValidationException" {
		t.Fatalf("code %s (%v)", code, err)
	}
	if len(s.Accepted()) != 0 {
		t.Fatal("entries accepted from an invalid request")
	}
}

func TestPutEventsEntryRules(t *testing.T) {
	s := ebtest.New(ebtest.Options{Buses: []string{"reservation"}, RejectUnknownBus: true})
	defer s.Close()
	noSource := entry("reservation", `{}`)
	noSource.Source = nil
	noDetailType := entry("reservation", `{}`)
	noDetailType.DetailType = aws.String("")
	noDetail := entry("reservation", `{}`)
	noDetail.Detail = nil
	entries := []types.PutEventsRequestEntry{
		entry("reservation", `{"ok":true}`),
		noSource,
		noDetailType,
		noDetail,
		entry("reservation", `[1,2]`),
		entry("reservation", `"text"`),
		entry("reservation", `{"a":1} {"b":2}`),
		entry("reservation", `{"a":`),
		entry("nope", `{}`),
		entry("", `{"default":"bus"}`), // "default" always exists
	}
	want := []string{"", "InvalidArgument", "InvalidArgument", "InvalidArgument", "MalformedDetail", "MalformedDetail",
		"MalformedDetail", "MalformedDetail", "ResourceNotFoundException", ""}
	out, err := client(s).PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	if int(out.FailedEntryCount) != 8 || len(out.Entries) != len(entries) {
		t.Fatalf("FailedEntryCount %d, %d results", out.FailedEntryCount, len(out.Entries))
	}
	for i, r := range out.Entries {
		if got := aws.ToString(r.ErrorCode); got != want[i] {
			t.Errorf("entry %d: code %q, want %q (%s)", i, got, want[i], aws.ToString(r.ErrorMessage))
		}
		if (want[i] == "") != (r.EventId != nil) {
			t.Errorf("entry %d: EventId %v with code %q", i, r.EventId, want[i])
		}
	}
	if acc := s.Accepted(); len(acc) != 2 || acc[1].Bus != "default" {
		t.Fatalf("accepted %+v", acc)
	}
}

func TestUnknownBusIsDroppedLikeAWS(t *testing.T) {
	s := ebtest.New(ebtest.Options{Buses: []string{"reservation"}})
	defer s.Close()
	out, err := client(s).PutEvents(context.Background(), &eventbridge.PutEventsInput{
		Entries: []types.PutEventsRequestEntry{entry("typo", `{}`)}})
	if err != nil || out.FailedEntryCount != 0 || out.Entries[0].EventId == nil {
		t.Fatalf("want success as AWS answers, got %+v %v", out, err)
	}
	if len(s.Accepted()) != 0 || len(s.Dropped()) != 1 {
		t.Fatalf("accepted %d dropped %d", len(s.Accepted()), len(s.Dropped()))
	}
	_, err = client(s).DescribeEventBus(context.Background(), &eventbridge.DescribeEventBusInput{Name: aws.String("typo")})
	if code := apiCode(t, err); code != "ResourceNotFoundException" {
		t.Fatalf("DescribeEventBus: %v", err)
	}
	d, err := client(s).DescribeEventBus(context.Background(), &eventbridge.DescribeEventBusInput{Name: aws.String("reservation")})
	if err != nil || aws.ToString(d.Arn) != s.BusARN("reservation") {
		t.Fatalf("DescribeEventBus: %+v %v", d, err)
	}
}

func TestRequestSizeLimitIsOnTheWholeRequest(t *testing.T) {
	s := ebtest.New(ebtest.Options{MaxEntryBytes: 100})
	defer s.Close()
	// Each entry is 10+12+40 = 62 bytes: one fits, two do not.
	detail := `{"x":"` + strings.Repeat("a", 32) + `"}`
	e := entry("b", detail)
	e.Source = aws.String("0123456789")
	if got := (ebtest.Entry{Source: "0123456789", DetailType: "SlotReserved", Detail: detail}).Size(); got != 62 {
		t.Fatalf("size %d", got)
	}
	if _, err := client(s).PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{e}}); err != nil {
		t.Fatal(err)
	}
	_, err := client(s).PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{e, e}})
	if code := apiCode(t, err); code != "ValidationException" || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("got %v", err)
	}
	// Time counts 14 bytes.
	if got := (ebtest.Entry{Source: "s", DetailType: "d", Detail: "{}", Resources: []string{"r1"}}).Size(); got != 6 {
		t.Fatalf("size %d", got)
	}
}

func TestInjectedFaults(t *testing.T) {
	s := ebtest.New(ebtest.Options{})
	defer s.Close()
	c := client(s)
	ctx := context.Background()

	s.FailNextRequests(1, http.StatusInternalServerError, ebtest.CodeInternalFailure)
	_, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry("b", `{}`)}})
	if code := apiCode(t, err); code != "InternalFailure" {
		t.Fatalf("got %v", err)
	}
	s.FailNextRequests(1, http.StatusBadRequest, ebtest.CodeThrottling)
	_, err = c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry("b", `{}`)}})
	if code := apiCode(t, err); code != "ThrottlingException" {
		t.Fatalf("got %v", err)
	}

	s.FailNextEntries(1, ebtest.CodeThrottling, "slow")
	s.FailEntriesIf(ebtest.CodeAccessDenied, func(e ebtest.Entry) bool { return strings.Contains(e.Detail, "denied") })
	for range 2 {
		out, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{
			entry("b", `{"a":"slow"}`), entry("b", `{"a":"denied"}`), entry("b", `{"a":"fine"}`)}})
		if err != nil {
			t.Fatal(err)
		}
		codes := []string{aws.ToString(out.Entries[0].ErrorCode), aws.ToString(out.Entries[1].ErrorCode), aws.ToString(out.Entries[2].ErrorCode)}
		t.Log(codes)
		if codes[1] != ebtest.CodeAccessDenied || codes[2] != "" {
			t.Fatalf("codes %v", codes)
		}
		if s.Calls()[len(s.Calls())-1] != 3 {
			t.Fatal("call not counted")
		}
	}
	if got := s.Calls(); len(got) != 4 {
		t.Fatalf("calls %v", got)
	}
	var slow []string
	for _, e := range s.Received() {
		if strings.Contains(e.Detail, "slow") {
			slow = append(slow, e.Outcome)
		}
	}
	if len(slow) != 2 || slow[0] != ebtest.CodeThrottling || slow[1] != "" {
		t.Fatalf("slow outcomes %v (the fault is for the next attempt only)", slow)
	}
	if n := len(s.Accepted()); n != 3 {
		t.Fatalf("accepted %d", n)
	}
}

// post sends a raw request, for the protocol checks the SDK never fails.
func post(t *testing.T, s *ebtest.Server, target, auth, body string) (int, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/", bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestProtocolChecks(t *testing.T) {
	s := ebtest.New(ebtest.Options{})
	defer s.Close()
	const good = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/events/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
	body := `{"Entries":[{"Source":"s","DetailType":"d","Detail":"{}","EventBusName":"b"}]}`
	cases := []struct {
		target, auth string
		status       int
		code         string
	}{
		{"AWSEvents.PutEvents", "", 400, "MissingAuthenticationTokenException"},
		{"AWSEvents.PutEvents", "Bearer x", 400, "IncompleteSignatureException"},
		{"AWSEvents.PutEvents", strings.Replace(good, "/events/", "/sqs/", 1), 400, "InvalidSignatureException"},
		{"AWSEvents.PutRule", good, 400, "UnknownOperationException"},
		{"AWSEvents.PutEvents", good, 200, ""},
	}
	for _, c := range cases {
		status, m := post(t, s, c.target, c.auth, body)
		if status != c.status || m["__type"] != c.code || (c.code != "" && m["message"] == "") {
			t.Errorf("%s %q: %d %v, want %d %s", c.target, c.auth, status, m, c.status, c.code)
		}
	}
	// Time is epoch seconds.
	status, _ := post(t, s, "AWSEvents.PutEvents", good, `{"Entries":[{"Source":"s","DetailType":"d","Detail":"{}","Time":1700000000.5}]}`)
	acc := s.Accepted()
	if status != 200 || len(acc) != 2 || acc[1].Time.Unix() != 1700000000 || acc[1].Size() != 1+1+2+14 {
		t.Fatalf("status %d accepted %+v", status, acc)
	}
}

// Stall plays an endpoint that accepts the connection and never answers: a
// client waits until its own context (or timeout) gives up. Unstall answers
// the requests held; Close does not wait for them.
func TestStall(t *testing.T) {
	s := ebtest.New(ebtest.Options{})
	defer s.Close()
	c := client(s)
	in := &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry("b", `{}`)}}

	s.Stall()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.PutEvents(ctx, in); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled PutEvents: %v, want the caller's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the deadline took %s to end the call", d)
	}
	waitFor(t, func() bool { return s.Stalled() == 0 }) // the server lets go of a request whose client left
	if len(s.Calls()) != 0 || len(s.Accepted()) != 0 {
		t.Fatalf("a stalled request was served: calls %v", s.Calls())
	}

	answered := make(chan error, 1)
	go func() { _, err := c.PutEvents(context.Background(), in); answered <- err }()
	waitFor(t, func() bool { return s.Stalled() == 1 })
	s.Unstall()
	if err := <-answered; err != nil || len(s.Accepted()) != 1 {
		t.Fatalf("after Unstall: %v, accepted %d", err, len(s.Accepted()))
	}

	s.Stall()
	go func() { _, err := c.PutEvents(context.Background(), in); answered <- err }()
	waitFor(t, func() bool { return s.Stalled() == 1 })
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on a stalled request")
	}
	if err := <-answered; err == nil {
		t.Fatal("a request held at Close got an answer")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met after 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
