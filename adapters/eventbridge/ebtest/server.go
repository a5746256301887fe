// Package ebtest is an in-process EventBridge PutEvents server for tests and
// manual runs. It speaks the wire protocol the AWS SDKs use (AWS JSON 1.1,
// POST /, X-Amz-Target AWSEvents.PutEvents, SigV4 Authorization header) and
// holds PutEvents' rules, so the real aws-sdk-go-v2 client can be pointed at it
// with BaseEndpoint (or AWS_ENDPOINT_URL_EVENTBRIDGE).
//
// Rules it enforces, as the service does:
//   - at most 10 entries a request, at least 1 (else 400 ValidationException);
//   - the sum of the entry sizes of one request at most MaxEntryBytes (else 400
//     ValidationException "Total size of the entries in the request is over
//     the limit."): AWS applies its size limit to the whole request, so one
//     oversized entry fails the request it is in, not only itself. Size as AWS
//     computes it: 14 if Time is set, plus the UTF-8 bytes of Source,
//     DetailType, Detail and each Resource;
//   - per entry: Source, DetailType and Detail required (InvalidArgument),
//     Detail must be a JSON object (MalformedDetail).
//
// Unknown buses: real EventBridge answers an entry for a bus that does not
// exist with success and an EventId, and drops the event. With
// Options.Buses set the server does the same by default (the entry goes to
// Dropped, not Accepted); Options.RejectUnknownBus makes it an entry error
// (ResourceNotFoundException) instead. DescribeEventBus answers 400
// ResourceNotFoundException for unknown buses, as the service does: that is
// how a client checks a bus exists.
//
// Test controls inject entry failures (FailEntriesIf, FailNextEntries),
// whole-request failures (FailNextRequests) and a hung endpoint (Stall);
// Accepted, Dropped, Received, Calls and Stalled report what happened. All
// methods are safe for concurrent use.
package ebtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/emitd/emitd/adapters/eventbridge"
)

// DefaultMaxEntryBytes is EventBridge's size limit (1 MiB since AWS raised it
// from 256 KB), defined once with the adapter.
const DefaultMaxEntryBytes = eventbridge.EntryBytesCap

// MaxEntriesPerRequest is PutEvents' limit on entries in one request.
const MaxEntriesPerRequest = 10

// Entry error codes and whole-request error types used by the service.
const (
	CodeInvalidArgument   = "InvalidArgument"
	CodeMalformedDetail   = "MalformedDetail"
	CodeThrottling        = "ThrottlingException"
	CodeInternalFailure   = "InternalFailure"
	CodeAccessDenied      = "AccessDeniedException"
	CodeNotAuthSource     = "NotAuthorizedForSourceException"
	CodeNotAuthDetailType = "NotAuthorizedForDetailTypeException"
	CodeResourceNotFound  = "ResourceNotFoundException"
	CodeValidation        = "ValidationException"
	CodeUnknownOperation  = "UnknownOperationException"
	CodeSerialization     = "SerializationException"
	CodeMissingAuthToken  = "MissingAuthenticationTokenException"
	CodeIncompleteSig     = "IncompleteSignatureException"
	CodeInvalidSignature  = "InvalidSignatureException"
	targetPrefix          = "AWSEvents."
	contentTypeJSON11     = "application/x-amz-json-1.1"
	defaultRegion         = "us-east-1"
	defaultAccount        = "000000000000"
	defaultBusName        = "default"
	timeEntrySizeInBytes  = 14
	maxRequestBodyInBytes = 64 << 20
)

// Options configure a Server.
type Options struct {
	// Buses are the event buses that exist ("default" always exists). Empty:
	// every bus exists.
	Buses []string
	// RejectUnknownBus makes an entry for a bus that does not exist fail with
	// ResourceNotFoundException. False (default) is what AWS does: success,
	// event dropped.
	RejectUnknownBus bool
	// MaxEntryBytes is the size limit of one request's entries (default
	// DefaultMaxEntryBytes).
	MaxEntryBytes int
	// Region and Account are used in ARNs (default us-east-1, 000000000000).
	Region, Account string
	// OnAccept, if set, is called for every accepted entry, in order, outside
	// the server's lock (calls are serialized).
	OnAccept func(Entry)
	// OnDrop, if set, is called likewise for every entry answered with success
	// for a bus that does not exist.
	OnDrop func(Entry)
}

// Entry is one PutEvents entry as the server saw it.
type Entry struct {
	EventID    string    `json:"EventId,omitempty"`
	Bus        string    `json:"EventBusName"` // bus name (an ARN is reduced to its name; "" is "default")
	Source     string    `json:"Source"`
	DetailType string    `json:"DetailType"`
	Detail     string    `json:"Detail"`
	Time       time.Time `json:"Time,omitzero"` // zero when the entry had no Time
	Resources  []string  `json:"Resources,omitempty"`
	// Outcome is what the server answered for this entry: "" for accepted (or
	// dropped), else the error code. Only set in Received.
	Outcome string `json:"-"`
}

// Size is the entry size as EventBridge computes it.
func (e Entry) Size() int {
	n := len(e.Source) + len(e.DetailType) + len(e.Detail)
	if !e.Time.IsZero() {
		n += timeEntrySizeInBytes
	}
	for _, r := range e.Resources {
		n += len(r)
	}
	return n
}

type entryFault struct {
	pred      func(Entry) bool
	remaining int // <0: unlimited
	code, msg string
}

type requestFault struct {
	remaining int
	status    int
	code, msg string
}

// Server is a running PutEvents server.
type Server struct {
	// URL is the base URL (http://127.0.0.1:PORT) to use as the client's
	// endpoint.
	URL string

	ts        *httptest.Server
	opts      Options
	buses     map[string]bool
	acceptMu  sync.Mutex    // serializes OnAccept calls
	closing   chan struct{} // closed by Close: releases stalled requests
	closeOnce sync.Once

	mu            sync.Mutex
	accepted      []Entry
	dropped       []Entry
	received      []Entry
	calls         []int
	entryFaults   []*entryFault
	requestFaults []*requestFault
	stall         chan struct{} // non-nil while stalled; closed by Unstall
	nStalled      int
}

// New starts a server on a free port of 127.0.0.1.
func New(opts Options) *Server {
	s, err := Listen("127.0.0.1:0", opts)
	if err != nil {
		panic(fmt.Sprintf("ebtest: %v", err))
	}
	return s
}

// Listen starts a server on addr (host:port).
func Listen(addr string, opts Options) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := newServer(opts)
	s.ts = httptest.NewUnstartedServer(s)
	_ = s.ts.Listener.Close()
	s.ts.Listener = l
	s.ts.Start()
	s.URL = s.ts.URL
	return s, nil
}

func newServer(opts Options) *Server {
	if opts.MaxEntryBytes <= 0 {
		opts.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if opts.Region == "" {
		opts.Region = defaultRegion
	}
	if opts.Account == "" {
		opts.Account = defaultAccount
	}
	s := &Server{opts: opts, closing: make(chan struct{})}
	if len(opts.Buses) > 0 {
		s.buses = map[string]bool{defaultBusName: true}
		for _, b := range opts.Buses {
			s.buses[b] = true
		}
	}
	return s
}

// Close stops the server. Stalled requests are let go first (their
// connections closed without an answer): httptest waits for every request
// in progress, and a stalled one would never finish.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.ts.Close()
}

// Stall makes the server an endpoint that hangs: from now on it accepts
// every connection and request and never answers, until Unstall (the
// requests held are then served as usual) or Close (their connections are
// closed without an answer). A client without a response timeout or a
// context that ends waits for ever.
func (s *Server) Stall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stall == nil {
		s.stall = make(chan struct{})
	}
}

// Unstall ends Stall: the requests held and every later one are answered.
func (s *Server) Unstall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stall != nil {
		close(s.stall)
		s.stall = nil
	}
}

// Stalled returns how many requests the server holds unanswered right now.
func (s *Server) Stalled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nStalled
}

// hold keeps a request unanswered while the server is stalled. It returns
// false when the request must get no answer at all (Close, or the client
// gave up).
func (s *Server) hold(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	stall := s.stall
	if stall != nil {
		s.nStalled++
	}
	s.mu.Unlock()
	if stall == nil {
		return true
	}
	// Read the request whole, as a server does before it works on it: only
	// then does net/http notice that the client hung up, and a request its
	// client gave up on must not be served later.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBodyInBytes))
	r.Body = io.NopCloser(bytes.NewReader(body))
	defer func() {
		s.mu.Lock()
		s.nStalled--
		s.mu.Unlock()
	}()
	if err != nil {
		return true // ServeHTTP answers the unreadable body
	}
	select {
	case <-stall:
		return true
	case <-r.Context().Done():
		return false
	case <-s.closing:
		// Returning from the handler would send an empty 200; closing the
		// connection is what a dying endpoint does.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
			}
		}
		return false
	}
}

// FailEntriesIf makes every entry for which pred is true fail with code (e.g.
// ThrottlingException, InternalFailure, AccessDeniedException,
// NotAuthorizedForSourceException, or any code a test needs) until
// ClearFaults. Only entries that pass validation are considered.
func (s *Server) FailEntriesIf(code string, pred func(Entry) bool) {
	s.addEntryFault(&entryFault{pred: pred, remaining: -1, code: code})
}

// FailNextEntries makes the next n attempts of entries whose Detail contains
// substr fail with code. Each failed entry uses up one of the n.
func (s *Server) FailNextEntries(n int, code, substr string) {
	s.addEntryFault(&entryFault{
		pred:      func(e Entry) bool { return strings.Contains(e.Detail, substr) },
		remaining: n,
		code:      code,
	})
}

func (s *Server) addEntryFault(f *entryFault) {
	f.msg = faultMessage(f.code)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entryFaults = append(s.entryFaults, f)
}

// FailNextRequests makes the next n PutEvents requests fail whole with the
// given HTTP status and error type, e.g. (500, "InternalFailure") or (400,
// "ThrottlingException").
func (s *Server) FailNextRequests(n, status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requestFaults = append(s.requestFaults, &requestFault{remaining: n, status: status, code: code, msg: faultMessage(code)})
}

// ClearFaults removes every injected failure.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entryFaults, s.requestFaults = nil, nil
}

// Accepted returns every accepted entry (for an existing bus), in order.
func (s *Server) Accepted() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Entry(nil), s.accepted...)
}

// Dropped returns the entries answered with success for a bus that does not
// exist (what AWS does), in order.
func (s *Server) Dropped() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Entry(nil), s.dropped...)
}

// Received returns every entry of every PutEvents request that was read, in
// order, whatever happened to it (Outcome holds the error code, if any; a
// whole-request failure sets it on each of the request's entries).
func (s *Server) Received() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Entry(nil), s.received...)
}

// Calls returns the number of entries of each PutEvents request that was
// read, in order, including requests that failed whole.
func (s *Server) Calls() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.calls...)
}

// Reset forgets what was received and accepted (not the faults).
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accepted, s.dropped, s.received, s.calls = nil, nil, nil, nil
}

// BusARN returns the ARN of the named bus.
func (s *Server) BusARN(name string) string {
	return fmt.Sprintf("arn:aws:events:%s:%s:event-bus/%s", s.opts.Region, s.opts.Account, name)
}

// ServeHTTP implements the protocol.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.hold(w, r) {
		return
	}
	w.Header().Set("x-amzn-RequestId", uuid.NewString())
	if r.Method != http.MethodPost || (r.URL.Path != "/" && r.URL.Path != "") {
		writeError(w, http.StatusNotFound, CodeUnknownOperation, "only POST / is served")
		return
	}
	if status, code, msg := checkAuth(r); code != "" {
		writeError(w, status, code, msg)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, contentTypeJSON11) {
		writeError(w, http.StatusBadRequest, CodeSerialization, fmt.Sprintf("Content-Type %q is not %s", ct, contentTypeJSON11))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBodyInBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeSerialization, "cannot read the request body")
		return
	}
	switch target := r.Header.Get("X-Amz-Target"); target {
	case targetPrefix + "PutEvents":
		s.putEvents(w, body)
	case targetPrefix + "DescribeEventBus":
		s.describeEventBus(w, body)
	default:
		writeError(w, http.StatusBadRequest, CodeUnknownOperation, fmt.Sprintf("operation %q is not supported by this server", target))
	}
}

// checkAuth requires a SigV4 Authorization header scoped to the events
// service. It does not verify the signature (it knows no secret keys).
func checkAuth(r *http.Request) (int, string, string) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return http.StatusBadRequest, CodeMissingAuthToken, "Missing Authentication Token"
	}
	const alg = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, alg) {
		return http.StatusBadRequest, CodeIncompleteSig, "Authorization header requires the AWS4-HMAC-SHA256 algorithm"
	}
	var cred string
	var signed, sig bool
	for _, part := range strings.Split(strings.TrimPrefix(auth, alg), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v != ""
		case "Signature":
			sig = v != ""
		}
	}
	scope := strings.Split(cred, "/") // AKID/DATE/REGION/SERVICE/aws4_request
	if len(scope) != 5 || !signed || !sig || scope[4] != "aws4_request" {
		return http.StatusBadRequest, CodeIncompleteSig, "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters"
	}
	if scope[3] != "events" {
		return http.StatusBadRequest, CodeInvalidSignature, fmt.Sprintf("Credential should be scoped to correct service: 'events', not %q", scope[3])
	}
	return 0, "", ""
}

type wireEntry struct {
	Detail       *string     `json:"Detail"`
	DetailType   *string     `json:"DetailType"`
	EventBusName *string     `json:"EventBusName"`
	Resources    []string    `json:"Resources"`
	Source       *string     `json:"Source"`
	Time         json.Number `json:"Time"`
	TraceHeader  *string     `json:"TraceHeader"`
}

type resultEntry struct {
	EventID      string `json:"EventId,omitempty"`
	ErrorCode    string `json:"ErrorCode,omitempty"`
	ErrorMessage string `json:"ErrorMessage,omitempty"`
}

func (s *Server) putEvents(w http.ResponseWriter, body []byte) {
	var req struct {
		Entries    []wireEntry `json:"Entries"`
		EndpointID *string     `json:"EndpointId"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, CodeSerialization, "request body is not valid JSON: "+err.Error())
		return
	}
	if len(req.Entries) == 0 {
		writeError(w, http.StatusBadRequest, CodeValidation, "1 validation error detected: Value null at 'entries' failed to satisfy constraint: Member must not be null")
		return
	}
	if len(req.Entries) > MaxEntriesPerRequest {
		writeError(w, http.StatusBadRequest, CodeValidation, fmt.Sprintf(
			"1 validation error detected: Value '%d entries' at 'entries' failed to satisfy constraint: Member must have length less than or equal to %d",
			len(req.Entries), MaxEntriesPerRequest))
		return
	}

	entries := make([]Entry, len(req.Entries))
	total := 0
	for i, we := range req.Entries {
		e := Entry{Bus: busName(deref(we.EventBusName)), Source: deref(we.Source), DetailType: deref(we.DetailType),
			Detail: deref(we.Detail), Resources: we.Resources}
		if we.Time != "" {
			if f, err := we.Time.Float64(); err == nil {
				sec, frac := math.Modf(f)
				e.Time = time.Unix(int64(sec), int64(frac*1e9)).UTC()
			} else {
				writeError(w, http.StatusBadRequest, CodeSerialization, "Time is not a number")
				return
			}
		}
		entries[i] = e
		total += e.Size()
	}

	s.mu.Lock()
	s.calls = append(s.calls, len(entries))
	if f := s.takeRequestFault(); f != nil {
		for _, e := range entries {
			e.Outcome = f.code
			s.received = append(s.received, e)
		}
		s.mu.Unlock()
		writeError(w, f.status, f.code, f.msg)
		return
	}
	if total > s.opts.MaxEntryBytes {
		for _, e := range entries {
			e.Outcome = CodeValidation
			s.received = append(s.received, e)
		}
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, CodeValidation, "Total size of the entries in the request is over the limit.")
		return
	}

	results := make([]resultEntry, len(entries))
	failed := 0
	var newlyAccepted, newlyDropped []Entry
	for i := range entries {
		e := &entries[i]
		code, msg := s.check(*e)
		if code == "" {
			code, msg = s.takeEntryFault(*e)
		}
		if code != "" {
			failed++
			e.Outcome = code
			results[i] = resultEntry{ErrorCode: code, ErrorMessage: msg}
			s.received = append(s.received, *e)
			continue
		}
		e.EventID = uuid.NewString()
		results[i] = resultEntry{EventID: e.EventID}
		s.received = append(s.received, *e)
		if s.buses != nil && !s.buses[e.Bus] {
			s.dropped = append(s.dropped, *e)
			newlyDropped = append(newlyDropped, *e)
			continue
		}
		s.accepted = append(s.accepted, *e)
		newlyAccepted = append(newlyAccepted, *e)
	}
	// Take the accept lock before releasing the state lock, so OnAccept sees
	// entries in acceptance order.
	s.acceptMu.Lock()
	s.mu.Unlock()
	if s.opts.OnAccept != nil {
		for _, e := range newlyAccepted {
			s.opts.OnAccept(e)
		}
	}
	if s.opts.OnDrop != nil {
		for _, e := range newlyDropped {
			s.opts.OnDrop(e)
		}
	}
	s.acceptMu.Unlock()

	writeJSON(w, http.StatusOK, struct {
		FailedEntryCount int           `json:"FailedEntryCount"`
		Entries          []resultEntry `json:"Entries"`
	}{failed, results})
}

// check applies the per-entry rules. Called with s.mu held.
func (s *Server) check(e Entry) (string, string) {
	for _, f := range []struct{ name, v string }{{"Source", e.Source}, {"DetailType", e.DetailType}, {"Detail", e.Detail}} {
		if f.v == "" {
			return CodeInvalidArgument, fmt.Sprintf("Parameter %s is not valid. Reason: %s is a required argument.", f.name, f.name)
		}
	}
	if !utf8.ValidString(e.Detail) || !isJSONObject(e.Detail) {
		return CodeMalformedDetail, "Detail is malformed."
	}
	if s.opts.RejectUnknownBus && s.buses != nil && !s.buses[e.Bus] {
		return CodeResourceNotFound, fmt.Sprintf("Event bus %s does not exist.", e.Bus)
	}
	return "", ""
}

func isJSONObject(s string) bool {
	var v map[string]json.RawMessage
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&v); err != nil || v == nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}

// Called with s.mu held.
func (s *Server) takeEntryFault(e Entry) (string, string) {
	for i, f := range s.entryFaults {
		if f.remaining == 0 || !f.pred(e) {
			continue
		}
		if f.remaining > 0 {
			f.remaining--
			if f.remaining == 0 {
				s.entryFaults = append(s.entryFaults[:i:i], s.entryFaults[i+1:]...)
			}
		}
		return f.code, f.msg
	}
	return "", ""
}

// Called with s.mu held.
func (s *Server) takeRequestFault() *requestFault {
	if len(s.requestFaults) == 0 {
		return nil
	}
	f := s.requestFaults[0]
	f.remaining--
	if f.remaining <= 0 {
		s.requestFaults = s.requestFaults[1:]
	}
	return f
}

func (s *Server) describeEventBus(w http.ResponseWriter, body []byte) {
	var req struct {
		Name string `json:"Name"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, CodeSerialization, "request body is not valid JSON: "+err.Error())
		return
	}
	name := busName(req.Name)
	if s.buses != nil && !s.buses[name] {
		writeError(w, http.StatusBadRequest, CodeResourceNotFound, fmt.Sprintf("Event bus %s does not exist.", name))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"Name": name, "Arn": s.BusARN(name)})
}

// busName reduces an event bus ARN to its name; "" is the default bus.
func busName(v string) string {
	if v == "" {
		return defaultBusName
	}
	if strings.HasPrefix(v, "arn:") {
		if _, name, ok := strings.Cut(v, ":event-bus/"); ok {
			return name
		}
	}
	return v
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func faultMessage(code string) string {
	switch code {
	case CodeThrottling:
		return "Rate exceeded"
	case CodeInternalFailure:
		return "The request processing has failed because of an unknown error, exception or failure."
	case CodeAccessDenied:
		return "User is not authorized to perform: events:PutEvents"
	case CodeNotAuthSource:
		return "Not authorized for the source."
	case CodeNotAuthDetailType:
		return "Not authorized for the detail type."
	case CodeResourceNotFound:
		return "Event bus does not exist."
	}
	return "injected failure: " + code
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"__type": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"__type":"InternalFailure","message":"encode reply"}`)
	}
	w.Header().Set("Content-Type", contentTypeJSON11)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
