package catalog_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/kafka"
	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/cmd/emitd/internal/brokers"
	"github.com/emitd/emitd/cmd/emitd/internal/catalog"
	"github.com/emitd/emitd/cmd/emitd/internal/catalog/catalogtest"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current catalog")

const configsDir = "../../../../configs"

// variant is a shipped configuration, possibly switched to CloudEvents.
type variant struct {
	name, file, format, mode string
}

var variants = []variant{
	{name: "embedded", file: "embedded.yaml"},
	{name: "aws", file: "aws.yaml"},
	{name: "sns-sqs", file: "sns-sqs.yaml"},
	{name: "kafka", file: "kafka.yaml"},
	{name: "nats", file: "nats.yaml"},
	{name: "amqp", file: "amqp.yaml"},
	{name: "embedded-cloudevents-structured", file: "embedded.yaml", format: "cloudevents", mode: "structured"},
	{name: "kafka-cloudevents-binary", file: "kafka.yaml", format: "cloudevents", mode: "binary"},
	{name: "nats-cloudevents-binary", file: "nats.yaml", format: "cloudevents", mode: "binary"},
	{name: "amqp-cloudevents-binary", file: "amqp.yaml", format: "cloudevents", mode: "binary"},
	{name: "sns-sqs-cloudevents-structured", file: "sns-sqs.yaml", format: "cloudevents", mode: "structured"},
}

func (v variant) config(t testing.TB) *configs.Config {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(configsDir, v.file))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if v.format != "" {
		i := strings.Index(doc, "\nevents:\n")
		if i < 0 {
			t.Fatalf("%s has no events section", v.file)
		}
		doc = doc[:i] + "\nevents:\n  format: " + v.format + "\n  cloudevents:\n    mode: " + v.mode + "\n" + doc[i+len("\nevents:\n"):]
	}
	cfg, err := configs.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("%s: %v", v.name, err)
	}
	return cfg
}

func newCatalog(t testing.TB, cfg *configs.Config) *catalog.Catalog {
	t.Helper()
	c, err := catalog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The catalog of every shipped setup is kept as golden files: a change in
// what emitd emits (a key, a header, a binding) changes the catalog, and
// fails here until the contract change is made on purpose (-update).
func TestGoldenCatalogs(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			c := newCatalog(t, v.config(t))
			golden(t, v.name+".asyncapi.json", c.AsyncAPI())
			// The schemas of every EventBridge-entry setup are the same
			// document (the buses have the same names): one golden file.
			if v.name == "embedded" || v.format != "" {
				golden(t, v.name+".jsonschema.json", c.JSONSchema())
			} else if want := newCatalog(t, variants[0].config(t)).JSONSchema(); string(c.JSONSchema()) != string(want) {
				t.Errorf("the JSON Schemas of %s differ from the embedded default's", v.name)
			}
		})
	}
}

func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", file)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/emitd/internal/catalog -update writes it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the catalog this code makes: if the contract changed on purpose, "+
			"go test ./cmd/emitd/internal/catalog -update rewrites it (and say so to consumers)", path)
	}
}

// stateFor is a slot in the state each event leaves it in.
func stateFor(ec domain.EventContract) domain.Change {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	host := ""
	if ec.Status == domain.StatusReserved || ec.Status == domain.StatusCheckedIn {
		host = "Sam & Kim <Person>" // HTML characters stay unescaped in Detail and data
	}
	return domain.Change{Event: ec.Event, Slot: domain.Slot{SlotID: "0128c8d4-5c3c-4b6e-9a57-2f3a1c9d8e01", HostName: host,
		Status: ec.Status, TimeSlot: domain.TimeSlot{StartTime: start, EndTime: start.Add(time.Hour)}}}
}

// envelopes makes, with the real factory, the domain event and analytics
// copy of every DetailType.
func envelopes(t *testing.T, cfg *configs.Config) []domain.Envelope {
	t.Helper()
	f := domain.EnvelopeFactory{Meta: cfg.Metadata, DomainBus: cfg.Events.DomainBus, AnalyticsBus: cfg.Events.AnalyticsBus}
	contracts, err := f.Contract()
	if err != nil {
		t.Fatal(err)
	}
	var out []domain.Envelope
	for _, ec := range contracts {
		envs, err := f.Events(domain.Decision{Changes: []domain.Change{stateFor(ec)}}, "corr-1", time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, envs...)
	}
	return out
}

// Every event the factory makes passes, in each format; and each thing
// emitd would never emit fails, naming where.
func TestEventSchemasAreAsStrictAsEmitd(t *testing.T) {
	for _, v := range []variant{variants[0], variants[6], {name: "embedded-binary", file: "embedded.yaml", format: "cloudevents", mode: "binary"}} {
		t.Run(v.name, func(t *testing.T) {
			cfg := v.config(t)
			val := catalogtest.New(t, newCatalog(t, cfg), nil)
			format := brokers.EventFormat(cfg)
			for _, env := range envelopes(t, cfg) {
				msg, err := format.Message(env)
				if err != nil {
					t.Fatal(err)
				}
				val.Event(t, env.EventBusName, msg)
			}
			// Mutations of one domain event and one analytics copy.
			envs := envelopes(t, cfg)
			dom, ana := envs[2], envs[3] // Reserved
			for _, m := range []struct {
				name string
				env  domain.Envelope
				bus  string
			}{
				{"analytics copy with slotStatus", detail(ana, `"hostName"`, `"slotStatus":"RESERVED","hostName"`), ana.EventBusName},
				{"domain event without slotStatus", detail(dom, `"slotStatus":"RESERVED",`, ``), dom.EventBusName},
				{"wrong slotStatus for the event", detail(dom, `"slotStatus":"RESERVED"`, `"slotStatus":"OPEN"`), dom.EventBusName},
				{"metadata key missing", detail(dom, `"team":"MyDemoTeam",`, ``), dom.EventBusName},
				{"unknown metadata key", detail(dom, `"team":`, `"squad":"x","team":`), dom.EventBusName},
				{"metadata value other than configured", detail(dom, `"region":"eu-north-1"`, `"region":"us-east-1"`), dom.EventBusName},
				{"metadata version 2", detail(dom, `"version":1`, `"version":2`), dom.EventBusName},
				{"timestamp without milliseconds", detailRe(dom, `"timestamp":"([^"]*)\.000Z"`, `"timestamp":"${1}Z"`), dom.EventBusName},
				{"slot id not canonical", detail(dom, `"slotId":"0128c8d4`, `"slotId":"0128C8D4`), dom.EventBusName},
				{"unknown data key", detail(dom, `"event":`, `"room":"A","event":`), dom.EventBusName},
				{"empty host on Reserved", detail(dom, `"hostName":"Sam & Kim <Person>"`, `"hostName":""`), dom.EventBusName},
				{"data.event of another DetailType", detail(dom, `"event":"RESERVED"`, `"event":"CANCELLED"`), dom.EventBusName},
				{"domain event on the analytics bus", dom, ana.EventBusName},
				{"Source of another event", with(dom, func(e *domain.Envelope) { e.Source = "reservation.slotreservation.cancelled" }), dom.EventBusName},
			} {
				msg, err := format.Message(m.env)
				if err != nil {
					t.Fatal(err)
				}
				if err := val.CheckEvent(m.bus, msg); err == nil {
					t.Errorf("%s: accepted\n%s", m.name, msg.Payload)
				} else {
					t.Logf("%s: refused: %.200s", m.name, strings.ReplaceAll(err.Error(), "\n", " "))
				}
			}
			if !format.CloudEvents() {
				for name, payload := range map[string]string{
					"Detail not JSON":             strings.Replace(entryJSON(t, dom), `"Detail":"{`, `"Detail":"x{`, 1),
					"DetailType of another event": strings.Replace(entryJSON(t, dom), `"DetailType":"Reserved"`, `"DetailType":"Created"`, 1),
					"extra entry member":          strings.Replace(entryJSON(t, dom), `{"EventBusName"`, `{"Time":1,"EventBusName"`, 1),
				} {
					msg := message.NewMessage("m", []byte(payload))
					msg.Metadata.Set(publisher.MetaEventID, dom.ID)
					if err := val.CheckEvent(dom.EventBusName, msg); err == nil {
						t.Errorf("%s: accepted\n%s", name, payload)
					}
				}
			}
		})
	}
}

func with(e domain.Envelope, f func(*domain.Envelope)) domain.Envelope { f(&e); return e }

func detail(e domain.Envelope, old, new string) domain.Envelope {
	if !strings.Contains(e.Detail, old) {
		panic("fixture: " + old + " not in " + e.Detail)
	}
	e.Detail = strings.Replace(e.Detail, old, new, 1)
	return e
}

func detailRe(e domain.Envelope, re, repl string) domain.Envelope {
	r := mustRe(re)
	if !r.MatchString(e.Detail) {
		panic("fixture: " + re + " not in " + e.Detail)
	}
	e.Detail = r.ReplaceAllString(e.Detail, repl)
	return e
}

func entryJSON(t *testing.T, e domain.Envelope) string {
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The command schema says what ParseCommand says, on every input of its
// fuzz corpus and on cases of each rule, but for what JSON Schema cannot
// express (written in the schema's $comment): numbers compare by value
// (1.0 is 1), lengths count characters, not bytes, and a JSON text must be
// Unicode (bytes that are not UTF-8, and escaped lone surrogates, are no
// JSON a schema validator reads).
func TestCommandSchemaAgreesWithParseCommand(t *testing.T) {
	val := catalogtest.New(t, newCatalog(t, variants[0].config(t)), nil)
	slot := "0128c8d4-5c3c-4b6e-9a57-2f3a1c9d8e01"
	inputs := map[string]string{
		"reserve":                 `{"type":"ReserveSlot","id":"c","data":{"slotId":"` + slot + `","hostName":"Sam Person"}}`,
		"reserve unicode":         `{"type":"ReserveSlot","id":"c","data":{"slotId":"` + slot + `","hostName":"Zoë 山田"}}`,
		"reserve spaces only":     `{"type":"ReserveSlot","id":"c","data":{"slotId":"` + slot + `","hostName":"  \u00a0 \u3000"}}`,
		"reserve tab":             `{"type":"ReserveSlot","id":"c","data":{"slotId":"` + slot + `","hostName":"Sam\tP"}}`,
		"reserve 100 characters":  `{"type":"ReserveSlot","id":"c","data":{"slotId":"` + slot + `","hostName":"` + strings.Repeat("é", 100) + `"}}`,
		"reserve 101 characters":  `{"type":"ReserveSlot","id":"c","data":{"slotId":"` + slot + `","hostName":"` + strings.Repeat("é", 101) + `"}}`,
		"reserve no data":         `{"type":"ReserveSlot","id":"c"}`,
		"reserve null data":       `{"type":"ReserveSlot","id":"c","data":null}`,
		"reserve upper-case slot": `{"type":"ReserveSlot","id":"c","data":{"slotId":"` + strings.ToUpper(slot) + `","hostName":"Sam"}}`,
		"reserve SlotID key":      `{"type":"ReserveSlot","id":"c","data":{"SlotID":"` + slot + `","hostName":"Sam"}}`,
		"check in":                `{"type":"CheckIn","id":"c","correlationId":"k","version":1,"data":{"slotId":"` + slot + `"}}`,
		"check in null corr":      `{"type":"CheckIn","id":"c","correlationId":null,"data":{"slotId":"` + slot + `"}}`,
		"check in extra":          `{"type":"CheckIn","id":"c","data":{"slotId":"` + slot + `","hostName":"x"}}`,
		"check in version 2":      `{"type":"CheckIn","id":"c","version":2,"data":{"slotId":"` + slot + `"}}`,
		"check in version string": `{"type":"CheckIn","id":"c","version":"1","data":{"slotId":"` + slot + `"}}`,
		"check in version null":   `{"type":"CheckIn","id":"c","version":null,"data":{"slotId":"` + slot + `"}}`,
		"check in no id":          `{"type":"CheckIn","data":{"slotId":"` + slot + `"}}`,
		"check in empty id":       `{"type":"CheckIn","id":"","data":{"slotId":"` + slot + `"}}`,
		"check in long id":        `{"type":"CheckIn","id":"` + strings.Repeat("a", 129) + `","data":{"slotId":"` + slot + `"}}`,
		"check in id 128":         `{"type":"CheckIn","id":"` + strings.Repeat("a", 128) + `","data":{"slotId":"` + slot + `"}}`,
		"check in control id":     `{"type":"CheckIn","id":"a\u0007","data":{"slotId":"` + slot + `"}}`,
		"unknown top key":         `{"type":"CheckIn","id":"c","Data":{"slotId":"` + slot + `"}}`,
		"unknown type":            `{"type":"DeleteEverything","id":"c"}`,
		"no type":                 `{"id":"c"}`,
		"create defaults":         `{"type":"CreateSlots","id":"c"}`,
		"create null data":        `{"type":"CreateSlots","id":"c","data":null}`,
		"create empty date":       `{"type":"CreateSlots","id":"c","data":{"date":""}}`,
		"create null fields":      `{"type":"CreateSlots","id":"c","data":{"date":null,"startHour":null,"count":null}}`,
		"create bad date":         `{"type":"CreateSlots","id":"c","data":{"date":"2026-13-01"}}`,
		"create date text":        `{"type":"CreateSlots","id":"c","data":{"date":"tomorrow"}}`,
		"create 23+1":             `{"type":"CreateSlots","id":"c","data":{"startHour":23,"count":1}}`,
		"create 23+2":             `{"type":"CreateSlots","id":"c","data":{"startHour":23,"count":2}}`,
		"create 0+24":             `{"type":"CreateSlots","id":"c","data":{"startHour":0,"count":24}}`,
		"create default+18":       `{"type":"CreateSlots","id":"c","data":{"count":18}}`,
		"create default+19":       `{"type":"CreateSlots","id":"c","data":{"count":19}}`,
		"create 14+default":       `{"type":"CreateSlots","id":"c","data":{"startHour":14}}`,
		"create 15+default":       `{"type":"CreateSlots","id":"c","data":{"startHour":15}}`,
		"create hour 24":          `{"type":"CreateSlots","id":"c","data":{"startHour":24,"count":1}}`,
		"create count 0":          `{"type":"CreateSlots","id":"c","data":{"count":0}}`,
		"create count string":     `{"type":"CreateSlots","id":"c","data":{"count":"2"}}`,
		"create data array":       `{"type":"CreateSlots","id":"c","data":[]}`,
		"close":                   `{"type":"CloseSlots","id":"c"}`,
		"close empty data":        `{"type":"UnattendSlots","id":"c","data":{}}`,
		"close with data":         `{"type":"CloseSlots","id":"c","data":{"all":true}}`,
		"array":                   `[]`,
		"trailing bytes":          `{"type":"CloseSlots","id":"c"} {}`,
	}
	corpus, err := filepath.Glob("../../../../domain/testdata/fuzz/FuzzParseCommand/*")
	if err != nil || len(corpus) == 0 {
		t.Fatalf("fuzz corpus: %v (%d files)", err, len(corpus))
	}
	for _, f := range corpus {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(b), "\n", 3)
		lit, ok := strings.CutPrefix(strings.TrimSpace(lines[1]), "[]byte(")
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if !ok || err != nil {
			t.Fatalf("%s: not a []byte corpus entry: %v", f, err)
		}
		inputs["corpus "+filepath.Base(f)] = s
	}
	gaps := map[string]string{
		"corpus version-float": "numbers compare by value",
	}
	agree := 0
	for name, in := range inputs {
		_, parseErr := domain.ParseCommand([]byte(in))
		var schemaErr error
		switch {
		case !utf8.ValidString(in):
			schemaErr = fmt.Errorf("not UTF-8: no JSON text")
		case loneSurrogate(in):
			schemaErr = fmt.Errorf("a lone surrogate: no Unicode text")
		case !json.Valid([]byte(in)):
			schemaErr = fmt.Errorf("not JSON")
		default:
			schemaErr = val.Check(domain.CommandSchemaID, []byte(in))
		}
		if (parseErr == nil) != (schemaErr == nil) {
			if why, ok := gaps[name]; ok {
				t.Logf("%s: ParseCommand %v, schema %v: a known gap (%s)", name, parseErr, schemaErr, why)
				continue
			}
			t.Errorf("%s: ParseCommand says %v, the schema says %v\n%.300s", name, parseErr, schemaErr, in)
			continue
		}
		agree++
	}
	t.Logf("schema and ParseCommand agree on %d of %d inputs", agree, len(inputs))
}

func TestOutcomeSchema(t *testing.T) {
	val := catalogtest.New(t, newCatalog(t, variants[0].config(t)), nil)
	at := time.Date(2026, 12, 1, 9, 0, 0, 123456789, time.UTC)
	ids := []string{"6f1c8b2e-0d4b-4a57-9d7e-2a0f6c3b1e01", "6f1c8b2e-0d4b-4a57-9d7e-2a0f6c3b1e02"}
	good := []domain.Outcome{
		{CommandID: "c", CorrelationID: "k", Type: domain.CmdReserveSlot, Status: domain.OutcomeAccepted, EventIDs: ids, At: at},
		{CommandID: "c", CorrelationID: "k", Type: domain.CmdCloseSlots, Status: domain.OutcomeAccepted, At: at},
		{CommandID: "c", CorrelationID: "k", Type: domain.CmdCheckOut, Status: domain.OutcomeRejected, Reason: "Slot is not in the correct status", At: at},
		{CommandID: "m-1", CorrelationID: "k", Status: domain.OutcomeDeadLettered, Reason: "not valid JSON", At: at},
		{CommandID: "c", CorrelationID: "k", Type: "DeleteEverything", Status: domain.OutcomeDeadLettered, Reason: "unknown command type", At: at},
	}
	for _, o := range good {
		b, _ := json.Marshal(o)
		val.Outcome(t, b)
	}
	bad := []domain.Outcome{
		{CommandID: "c", CorrelationID: "k", Type: domain.CmdReserveSlot, Status: domain.OutcomeAccepted, EventIDs: ids, Reason: "x", At: at},
		{CommandID: "c", CorrelationID: "k", Type: domain.CmdCheckOut, Status: domain.OutcomeRejected, At: at},
		{CommandID: "c", CorrelationID: "k", Type: domain.CmdCheckOut, Status: domain.OutcomeRejected, Reason: "r", EventIDs: ids, At: at},
		{CommandID: "c", CorrelationID: "k", Type: "Nope", Status: domain.OutcomeAccepted, EventIDs: ids, At: at},
		{CommandID: "c", CorrelationID: "k", Type: domain.CmdCheckIn, Status: "maybe", At: at},
		{CommandID: "c", CorrelationID: "k", Type: domain.CmdCheckIn, Status: domain.OutcomeAccepted, EventIDs: ids[:1], At: at},
		{CommandID: "", CorrelationID: "k", Type: domain.CmdCheckIn, Status: domain.OutcomeAccepted, At: at},
		{CommandID: "c", CorrelationID: "k", Type: domain.CmdCheckIn, Status: domain.OutcomeAccepted, At: at.In(time.FixedZone("X", 3600))},
	}
	for i, o := range bad {
		b, _ := json.Marshal(o)
		if err := val.Check(domain.OutcomeSchemaID, b); err == nil {
			t.Errorf("bad outcome %d accepted: %s", i, b)
		}
	}
	if err := val.Check(domain.OutcomeSchemaID, []byte(`{"commandId":"c","correlationId":"k","type":"CheckIn","status":"accepted","at":"2026-12-01T09:00:00Z","extra":1}`)); err == nil {
		t.Error("an outcome with an unknown member accepted")
	}
}

// CI validates every AsyncAPI document with the official parser
// (@asyncapi/parser 3.x, from test-tools/, on the machine's Node 20).
func TestAsyncAPIParserAcceptsTheCatalogs(t *testing.T) {
	node, err := exec.LookPath("node")
	tools, _ := filepath.Abs("../../../../test-tools")
	_, statErr := os.Stat(filepath.Join(tools, "node_modules", "@asyncapi", "parser"))
	switch {
	case err != nil && os.Getenv("CI") == "":
		t.Skip("node is not installed: the AsyncAPI parser runs on Node (CI fails instead of skipping)")
	case err != nil:
		t.Fatalf("node is not installed, and CI needs it to validate the AsyncAPI documents: %v", err)
	case statErr != nil:
		t.Fatalf("@asyncapi/parser is not installed in test-tools: run `make test-tools` (%v)", statErr)
	}
	dir := t.TempDir()
	var files []string
	for _, v := range variants {
		f := filepath.Join(dir, v.name+".json")
		if err := os.WriteFile(f, newCatalog(t, v.config(t)).AsyncAPI(), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	cmd := exec.Command(node, append([]string{filepath.Join(tools, "asyncapi-validate.mjs")}, files...)...)
	cmd.Dir = tools
	out, err := cmd.CombinedOutput()
	t.Logf("@asyncapi/parser:\n%s", out)
	if err != nil {
		t.Fatalf("the AsyncAPI parser refused a catalog (%v)", err)
	}
	if n := strings.Count(string(out), ": parsed: AsyncAPI 3.0.0, 5 channels, 26 messages"); n != len(files) {
		t.Errorf("%d of %d documents parsed whole", n, len(files))
	}
}

func TestHandler(t *testing.T) {
	c := newCatalog(t, variants[0].config(t))
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		query, contentType string
		want               []byte
		status             int
	}{
		{"", "application/json", c.AsyncAPI(), 200},
		{"?format=asyncapi", "application/json", c.AsyncAPI(), 200},
		{"?format=jsonschema", "application/schema+json", c.JSONSchema(), 200},
		{"?format=avro", "", nil, 400},
	} {
		resp, err := http.Get(srv.URL + "/catalog" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s: %d %s", tc.query, resp.StatusCode, body)
			continue
		}
		if tc.want != nil && (string(body) != string(tc.want) || resp.Header.Get("Content-Type") != tc.contentType) {
			t.Errorf("GET %s: Content-Type %q and %d bytes, want %q and the catalog", tc.query, resp.Header.Get("Content-Type"), len(body), tc.contentType)
		}
	}
	resp, err := http.Post(srv.URL+"/catalog", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}

func mustRe(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// loneSurrogate tells a JSON text with an escaped lone surrogate, which
// encoding/json turns into U+FFFD.
func loneSurrogate(in string) bool {
	var v any
	if json.Unmarshal([]byte(in), &v) != nil {
		return false
	}
	b, _ := json.Marshal(v)
	return strings.Contains(string(b), "\ufffd") && !strings.Contains(strings.ToLower(in), "\\ufffd") && !strings.ContainsRune(in, utf8.RuneError)
}

// A broker reached over TLS is described as such: AsyncAPI names Kafka
// over TLS kafka-secure, and a consumer's tools pick their client by it.
func TestSecureServers(t *testing.T) {
	server := func(cfg *configs.Config) map[string]any {
		var doc struct {
			Servers map[string]map[string]any `json:"servers"`
		}
		if err := json.Unmarshal(newCatalog(t, cfg).AsyncAPI(), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Servers) != 1 {
			t.Fatalf("servers: %v", doc.Servers)
		}
		for _, s := range doc.Servers {
			return s
		}
		return nil
	}
	k := variant{name: "kafka", file: "kafka.yaml"}.config(t)
	if p := server(k)["protocol"]; p != "kafka" {
		t.Errorf("plain Kafka: protocol %v", p)
	}
	kafka.SectionOf(k).TLS.Enabled = true
	if p := server(k)["protocol"]; p != "kafka-secure" {
		t.Errorf("Kafka over TLS: protocol %v, want kafka-secure", p)
	}
	n := variant{name: "nats", file: "nats.yaml"}.config(t)
	natsjs.NATSSectionOf(n).TLS.CAFile = "/etc/emitd/nats-ca.pem"
	if d, _ := server(n)["description"].(string); !strings.Contains(d, "over TLS") {
		t.Errorf("NATS with a tls section: description %q", d)
	}
}
