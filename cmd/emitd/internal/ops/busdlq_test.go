package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/eventbridge/ebtest"
	"github.com/emitd/emitd/adapters/sns"
	"github.com/emitd/emitd/adapters/sqlite"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/cmd/emitd/internal/ops"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

var ctx = context.Background()

// bed is one test's AWS: fauxqs for SQS and SNS, the PutEvents test server
// for EventBridge, a configuration from configs/ pointed at them through
// the SDK's environment, and an empty SQLite store.
type bed struct {
	t   *testing.T
	cfg *configs.Config
	sqs *awssqs.Client
	sns *awssns.Client
	eb  *ebtest.Server
	ops *ops.Ops
}

func newBed(t *testing.T, file string, replace ...string) *bed {
	t.Helper()
	endpoint := awstest.StartFauxqs(t)
	eb := ebtest.New(ebtest.Options{Buses: []string{"reservation", "analytics"}})
	t.Cleanup(eb.Close)
	awstest.SetEnv(t, map[string]string{"AWS_ENDPOINT_URL_SQS": endpoint, "AWS_ENDPOINT_URL_SNS": endpoint, "AWS_ENDPOINT_URL_EVENTBRIDGE": eb.URL})
	b, err := os.ReadFile("../../../../configs/" + file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := strings.Replace(string(b), "dataDir: ./data", "dataDir: "+filepath.Join(dir, "data"), 1)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("%s has no %q", file, replace[i])
		}
		s = strings.Replace(s, replace[i], replace[i+1], 1)
	}
	cfg, err := configs.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(cfg.DataDir, sqlite.Options{}) // the store `emitd serve` made
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	o, err := ops.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	aws := awstest.AWSConfig(endpoint)
	return &bed{t: t, cfg: cfg, sqs: awssqs.NewFromConfig(aws), sns: awssns.NewFromConfig(aws), eb: eb, ops: o}
}

func (b *bed) queue(name string) string {
	b.t.Helper()
	out, err := b.sqs.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		b.t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl)
}

// events are a Reserved event and its analytics copy, as the daemon makes
// them (the host's name has what JSON encoders like to escape).
func events(t *testing.T) (dom, ana domain.Envelope) {
	t.Helper()
	f := domain.EnvelopeFactory{Meta: domain.DefaultMetadata(), DomainBus: "reservation", AnalyticsBus: "analytics"}
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	slot := domain.Slot{SlotID: uuid.NewString(), HostName: "Sam <Person> & Søn", Status: domain.StatusReserved,
		TimeSlot: domain.TimeSlot{StartTime: start, EndTime: start.Add(time.Hour)}}
	envs, err := f.Events(domain.Decision{Changes: []domain.Change{{Slot: slot, Event: domain.EventReserved}}}, uuid.NewString(), start.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return envs[0], envs[1]
}

const account = "123456789012"

func ruleARN(bus, rule string) string {
	return fmt.Sprintf("arn:aws:events:eu-north-1:%s:rule/%s/%s", account, bus, rule)
}

// delivered is an event as EventBridge delivers it to a target, and so as
// it lands in the target's dead-letter queue: the detail as JSON.
func delivered(source, detailType, detail string, resources ...string) string {
	res, _ := json.Marshal(append([]string{}, resources...))
	return fmt.Sprintf(`{"version":"0","id":%q,"detail-type":%q,"source":%q,"account":%q,"time":"2026-11-25T09:00:01Z",`+
		`"region":"eu-north-1","resources":%s,"detail":%s}`, uuid.NewString(), detailType, source, account, res, detail)
}

// deadLetter sends what EventBridge sends to a rule target's dead-letter
// queue: the delivered event, and the six documented attributes
// (RETRY_ATTEMPTS a Number).
func (b *bed) deadLetter(url, body, rule, code string) string {
	b.t.Helper()
	str := func(v string) types.MessageAttributeValue {
		return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	out, err := b.sqs.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"RULE_ARN":                  str(rule),
			"TARGET_ARN":                str("arn:aws:lambda:eu-north-1:" + account + ":function:OpenSlot"),
			"ERROR_CODE":                str(code),
			"ERROR_MESSAGE":             str("Lambda function is throttled: Rate Exceeded."),
			"EXHAUSTED_RETRY_CONDITION": str("MaximumRetryAttempts"),
			"RETRY_ATTEMPTS":            {DataType: aws.String("Number"), StringValue: aws.String("3")},
		}})
	if err != nil {
		b.t.Fatal(err)
	}
	return aws.ToString(out.MessageId)
}

// visible is what the queue holds, visible to every reader, by message id
// (receives that hide nothing, until they bring nothing new).
func (b *bed) visible(url string) map[string]string {
	b.t.Helper()
	awsCfg := awstest.AWSConfig(os.Getenv("AWS_ENDPOINT_URL_SQS"))
	q, err := sqs.OpenQueue(ctx, sqs.Config{AWSConfig: &awsCfg}, url)
	if err != nil {
		b.t.Fatal(err)
	}
	out := map[string]string{}
	for quiet := 0; quiet < 3; {
		got, err := q.Receive(ctx, 10, 0, 0)
		if err != nil {
			b.t.Fatal(err)
		}
		quiet++
		for _, m := range got {
			if _, ok := out[m.MessageID]; !ok {
				out[m.MessageID], quiet = m.Body, 0
			}
		}
	}
	return out
}

func (b *bed) run(queue string, opts ops.BusReplay) publisher.Summary {
	b.t.Helper()
	if opts.MaxReplays == 0 {
		opts.MaxReplays = 3
	}
	if opts.Visibility == 0 {
		opts.Visibility = time.Minute
	}
	r, q, err := b.ops.BusReemitter(ctx, queue, opts)
	if err != nil {
		b.t.Fatal(err)
	}
	sum, err := r.Run(ctx)
	if cerr := q.Close(ctx); cerr != nil {
		b.t.Errorf("close: %v", cerr)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	return sum
}

// byMessage indexes results by the queue's message id.
func byMessage(t *testing.T, sum publisher.Summary) map[string]publisher.ReplayResult {
	t.Helper()
	out := map[string]publisher.ReplayResult{}
	for _, r := range sum.Results {
		if _, dup := out[r.MessageID]; dup {
			t.Errorf("message %s reported twice", r.MessageID)
		}
		out[r.MessageID] = r
	}
	return out
}

func wantResult(t *testing.T, got map[string]publisher.ReplayResult, id, action, why string) {
	t.Helper()
	r, ok := got[id]
	if !ok {
		t.Errorf("message %s: no result", id)
		return
	}
	if r.Action != action || !strings.Contains(r.Why, why) {
		t.Errorf("message %s: %s %q, want %s with a reason saying %q", id, r.Action, r.Why, action, why)
	}
	if len(r.Why) > 600 {
		t.Errorf("message %s: a %d-byte reason: the input is not bounded", id, len(r.Why))
	}
}

// An EventBridge rule target's dead-letter queue with events to re-emit
// and poisoned messages of each kind. A dry run changes nothing; the run
// re-emits each good event once, exactly as it was, field by field, and
// deletes its messages; every other message gets its reason and stays.
func TestReEmitFromARuleTargetDeadLetterQueue(t *testing.T) {
	b := newBed(t, "aws.yaml")
	url := b.queue("ReservationBusDlq")
	dom, ana := events(t)
	forbidden, _ := events(t)
	looping, _ := events(t)
	rule := ruleARN("reservation", "ReservationBusDlq")
	good := b.deadLetter(url, delivered(dom.Source, dom.DetailType, dom.Detail), rule, "SDK_CLIENT_ERROR")
	// The same event, dead-lettered by a second target of the rule.
	twin := b.deadLetter(url, delivered(dom.Source, dom.DetailType, dom.Detail), rule, "SDK_CLIENT_ERROR")
	withRes := b.deadLetter(url, delivered(ana.Source, ana.DetailType, ana.Detail, "arn:aws:dynamodb:eu-north-1:"+account+":table/slots"),
		ruleARN("analytics", "ToWarehouse"), "NO_PERMISSIONS")
	poison := map[string]string{
		b.deadLetter(url, "not json "+strings.Repeat("x", 5000), rule, "SDK_CLIENT_ERROR"): "not an EventBridge event",
		b.deadLetter(url, `{"version":"0","id":"x","detail-type":"Reserved","source":"s","account":"1","time":"2026-11-25T09:00:01Z",`+
			`"region":"eu-north-1","resources":[]}`, rule, "SDK_CLIENT_ERROR"): "no detail",
		b.deadLetter(url, delivered(dom.Source, dom.DetailType, dom.Detail), ruleARN("orders", "Orders"), "SDK_CLIENT_ERROR"): `bus "orders"`,
		b.deadLetter(url, delivered(forbidden.Source, "Teleported", forbidden.Detail), rule, "SDK_CLIENT_ERROR"):              "emit policy",
		b.deadLetter(url, delivered(looping.Source, looping.DetailType, looping.Detail), rule, "SDK_CLIENT_ERROR"):            "re-emitted 3 times already",
	}
	for range 3 { // a loop: this event was re-emitted three times before
		if _, ok, err := b.ops.Store.TakeEventReplay(ctx, looping.ID, 3); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	all := len(poison) + 3

	// The listing takes nothing, and shows each message's context.
	list, err := b.ops.ListBusDLQ(ctx, "ReservationBusDlq", publisher.BusDLQFilter{})
	if err != nil || len(list) != all {
		t.Fatalf("list: %d messages, %v; want %d", len(list), err, all)
	}
	for _, d := range list {
		if d.MessageID == withRes {
			if d.From != publisher.FromRuleTarget || d.EventID != ana.ID || d.DetailType != "Reserved" || d.Bus != "analytics" ||
				d.Rule != ruleARN("analytics", "ToWarehouse") || d.Target != "arn:aws:lambda:eu-north-1:"+account+":function:OpenSlot" ||
				d.ErrorCode != "NO_PERMISSIONS" || d.ErrorMessage != "Lambda function is throttled: Rate Exceeded." ||
				d.Exhausted != "MaximumRetryAttempts" || d.Attempts != 3 || d.Problem != "" || d.Sent.IsZero() || d.Receives < 1 {
				t.Errorf("listed %+v", d)
			}
		}
		if d.EventID == looping.ID && d.Replays != 3 {
			t.Errorf("the looping event lists %d replays, want 3", d.Replays)
		}
		if why, ok := poison[d.MessageID]; ok && why != "re-emitted 3 times already" && why != "emit policy" && d.Problem == "" {
			t.Errorf("poisoned message %s lists no problem", d.MessageID)
		}
	}
	if n := len(b.visible(url)); n != all {
		t.Fatalf("after listing, %d messages visible, want %d", n, all)
	}
	onlyRule, _ := b.ops.ListBusDLQ(ctx, "ReservationBusDlq", publisher.BusDLQFilter{Rules: []string{"ToWarehouse"}})
	if len(onlyRule) != 1 || onlyRule[0].MessageID != withRes {
		t.Errorf("--rule ToWarehouse: %v", onlyRule)
	}

	// A dry run: what would go, and nothing moves.
	sum := b.run("ReservationBusDlq", ops.BusReplay{DryRun: true})
	if sum.Replayed != 3 || sum.Skipped != len(poison) || sum.Failed != 0 {
		t.Errorf("dry run: %+v", sum)
	}
	res := byMessage(t, sum)
	wantResult(t, res, good, "would-replay", "")
	wantResult(t, res, twin, "would-replay", "the same event as message "+good)
	if len(b.eb.Received()) != 0 || len(b.visible(url)) != all {
		t.Fatalf("the dry run sent %d entries, left %d of %d messages", len(b.eb.Received()), len(b.visible(url)), all)
	}
	if n, _ := b.ops.Store.EventReplays(ctx, []string{dom.ID}); n[dom.ID] != 0 {
		t.Fatalf("the dry run counted a replay")
	}

	// The run.
	sum = b.run(url, ops.BusReplay{}) // by URL this time
	if sum.Replayed != 3 || sum.Skipped != len(poison) || sum.Failed != 0 {
		t.Errorf("run: %+v", sum)
	}
	res = byMessage(t, sum)
	wantResult(t, res, good, "replayed", "")
	wantResult(t, res, twin, "replayed", "re-emitted once in this run")
	wantResult(t, res, withRes, "replayed", "")
	for id, why := range poison {
		wantResult(t, res, id, "skipped", why)
	}
	// The bus got each event once, exactly: every field as the daemon
	// made it, the Detail byte for byte, the resources kept.
	acc := b.eb.Accepted()
	if len(acc) != 2 {
		t.Fatalf("the bus accepted %d entries, want 2 (the twin is the same event): %+v", len(acc), acc)
	}
	for i, want := range []struct {
		env domain.Envelope
		res []string
	}{{dom, nil}, {ana, []string{"arn:aws:dynamodb:eu-north-1:" + account + ":table/slots"}}} {
		got := acc[i]
		if got.Bus != want.env.EventBusName || got.Source != want.env.Source || got.DetailType != want.env.DetailType ||
			got.Detail != want.env.Detail || !reflect.DeepEqual(got.Resources, want.res) || !got.Time.IsZero() {
			t.Errorf("entry %d on the bus:\n got %+v\nwant %+v, resources %v", i, got, want.env, want.res)
		}
	}
	// Deleted: exactly the re-emitted ones; the poisoned ones are there and
	// visible again at once.
	left := b.visible(url)
	if len(left) != len(poison) {
		t.Errorf("%d messages left, want the %d poisoned ones", len(left), len(poison))
	}
	for id := range poison {
		if _, ok := left[id]; !ok {
			t.Errorf("poisoned message %s is gone", id)
		}
	}
	counts, _ := b.ops.Store.EventReplays(ctx, []string{dom.ID, ana.ID, looping.ID, forbidden.ID})
	if !reflect.DeepEqual(counts, map[string]int{dom.ID: 1, ana.ID: 1, looping.ID: 3}) {
		t.Errorf("replay counts %v", counts)
	}

	// Again: the loop guard stops the same event at --max-replays.
	again := b.deadLetter(url, delivered(dom.Source, dom.DetailType, dom.Detail), rule, "SDK_CLIENT_ERROR")
	sum = b.run(url, ops.BusReplay{MaxReplays: 1, Filter: publisher.BusDLQFilter{EventIDs: []string{dom.ID}}})
	wantResult(t, byMessage(t, sum), again, "skipped", "re-emitted 1 times already (--max-replays 1)")
	if sum.Unselected != len(poison) || len(b.eb.Accepted()) != 2 {
		t.Errorf("--id: %+v, %d accepted", sum, len(b.eb.Accepted()))
	}
}

// A bus that does not take the event: the message stays, the replay taken
// for it is given back, and a later run, with the bus back, re-emits it.
func TestABusThatRefusesLeavesTheMessage(t *testing.T) {
	b := newBed(t, "aws.yaml")
	url := b.queue("dlq")
	dom, _ := events(t)
	id := b.deadLetter(url, delivered(dom.Source, dom.DetailType, dom.Detail), ruleARN("reservation", "r"), "SDK_CLIENT_ERROR")

	b.eb.FailEntriesIf(ebtest.CodeAccessDenied, func(ebtest.Entry) bool { return true })
	sum := b.run(url, ops.BusReplay{})
	wantResult(t, byMessage(t, sum), id, "failed", "AccessDeniedException")
	if sum.Failed != 1 {
		t.Errorf("%+v", sum)
	}
	if _, ok := b.visible(url)[id]; !ok {
		t.Fatal("the message left the queue, though the bus did not take its event")
	}
	if n, _ := b.ops.Store.EventReplays(ctx, []string{dom.ID}); n[dom.ID] != 0 {
		t.Errorf("a failed re-emit stays counted: %v", n)
	}

	b.eb.ClearFaults()
	sum = b.run(url, ops.BusReplay{})
	wantResult(t, byMessage(t, sum), id, "replayed", "")
	if len(b.eb.Accepted()) != 1 || len(b.visible(url)) != 0 {
		t.Errorf("%d accepted, %d left", len(b.eb.Accepted()), len(b.visible(url)))
	}
}

// Filters select by DetailType, rule, error code and age; what they leave
// is not touched.
func TestFiltersSelect(t *testing.T) {
	b := newBed(t, "aws.yaml")
	url := b.queue("dlq")
	dom, ana := events(t)
	rule := ruleARN("reservation", "r")
	a := b.deadLetter(url, delivered(dom.Source, dom.DetailType, dom.Detail), rule, "SDK_CLIENT_ERROR")
	c := b.deadLetter(url, delivered(ana.Source, ana.DetailType, ana.Detail), ruleARN("analytics", "w"), "NO_PERMISSIONS")
	for _, f := range []struct {
		filter publisher.BusDLQFilter
		want   []string
	}{
		{publisher.BusDLQFilter{DetailTypes: []string{"Reserved"}}, []string{a, c}},
		{publisher.BusDLQFilter{DetailTypes: []string{"Opened"}}, nil},
		{publisher.BusDLQFilter{Rules: []string{rule}}, []string{a}},
		{publisher.BusDLQFilter{Rules: []string{"w"}}, []string{c}},
		{publisher.BusDLQFilter{ErrorCodes: []string{"NO_PERMISSIONS"}}, []string{c}},
		{publisher.BusDLQFilter{Since: time.Now().Add(-time.Hour)}, []string{a, c}},
		{publisher.BusDLQFilter{Since: time.Now().Add(time.Hour)}, nil},
		{publisher.BusDLQFilter{Before: time.Now().Add(-time.Hour)}, nil},
		{publisher.BusDLQFilter{Limit: 1}, nil}, // one of the two
	} {
		sum := b.run(url, ops.BusReplay{DryRun: true, Filter: f.filter})
		var got []string
		for _, r := range sum.Results {
			got = append(got, r.MessageID)
		}
		slices.Sort(got)
		want := slices.Clone(f.want)
		slices.Sort(want)
		if f.filter.Limit == 1 {
			if len(got) != 1 || sum.Unselected != 1 {
				t.Errorf("limit 1: %v, %d unselected", got, sum.Unselected)
			}
			continue
		}
		if !slices.Equal(got, want) || sum.Unselected != 2-len(want) {
			t.Errorf("%+v: selected %v (%d not), want %v", f.filter, got, sum.Unselected, want)
		}
	}
	sum := b.run(url, ops.BusReplay{Filter: publisher.BusDLQFilter{ErrorCodes: []string{"NO_PERMISSIONS"}}})
	if sum.Replayed != 1 || len(b.eb.Accepted()) != 1 || b.eb.Accepted()[0].Bus != "analytics" {
		t.Fatalf("%+v, accepted %+v", sum, b.eb.Accepted())
	}
	if left := b.visible(url); len(left) != 1 || left[a] == "" {
		t.Errorf("left %v, want the message the filter did not select", left)
	}
}

// An SNS subscription's dead-letter queue, in both shapes, made by SNS
// itself (the emulator): each subscription's queue holds what SNS
// delivered, which is what its DLQ would hold. The events go back to their
// topic, the message byte for byte; messages of another topic, bytes that
// are no event, and a rule target's dead letter (on a configuration whose
// bus is SNS) stay with their reasons.
func TestReEmitFromASubscriptionDeadLetterQueue(t *testing.T) {
	b := newBed(t, "sns-sqs.yaml")
	ctx := context.Background()
	topic := func(name string) string {
		out, err := b.sns.CreateTopic(ctx, &awssns.CreateTopicInput{Name: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.TopicArn)
	}
	subscribe := func(topicArn, queueURL string, raw bool) string {
		qa, err := b.sqs.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
		if err != nil {
			t.Fatal(err)
		}
		attrs := map[string]string{}
		if raw {
			attrs["RawMessageDelivery"] = "true"
		}
		out, err := b.sns.Subscribe(ctx, &awssns.SubscribeInput{TopicArn: aws.String(topicArn), Protocol: aws.String("sqs"),
			Endpoint: aws.String(qa.Attributes["QueueArn"]), Attributes: attrs, ReturnSubscriptionArn: true})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.SubscriptionArn)
	}
	reservation, analytics, orders := topic("reservation"), topic("analytics"), topic("orders")
	wrapped, raw := b.queue("consumer-dlq"), b.queue("raw-consumer-dlq")
	subs := []string{subscribe(reservation, wrapped, false), subscribe(analytics, raw, true), subscribe(orders, wrapped, false)}

	// The daemon's publisher puts the events on their topics, as the relay does.
	awsCfg := awstest.AWSConfig(os.Getenv("AWS_ENDPOINT_URL_SNS"))
	pub, err := sns.NewPublisher(ctx, sns.Config{AWSConfig: &awsCfg})
	if err != nil {
		t.Fatal(err)
	}
	dom, ana := events(t)
	other, _ := events(t)
	msgs := map[string]*publisherMsg{}
	for _, e := range []domain.Envelope{dom, ana} {
		m, err := publisher.ToMessage(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(e.EventBusName, m); err != nil {
			t.Fatal(err)
		}
		msgs[e.ID] = &publisherMsg{payload: string(m.Payload), bus: e.EventBusName}
	}
	om, _ := publisher.ToMessage(other)
	if err := pub.Publish(orders, om); err != nil {
		t.Fatal(err)
	}
	if _, err := b.sqs.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(raw), MessageBody: aws.String("no event at all")}); err != nil {
		t.Fatal(err)
	}
	b.deadLetter(wrapped, delivered(dom.Source, dom.DetailType, dom.Detail), ruleARN("reservation", "r"), "SDK_CLIENT_ERROR")
	for _, s := range subs { // the DLQs must not get the re-emits
		if _, err := b.sns.Unsubscribe(ctx, &awssns.UnsubscribeInput{SubscriptionArn: aws.String(s)}); err != nil {
			t.Fatal(err)
		}
	}
	consumer := b.queue("consumer")
	subscribe(reservation, consumer, true)
	subscribe(analytics, consumer, true)

	for _, q := range []string{wrapped, raw} {
		list, err := b.ops.ListBusDLQ(ctx, q, publisher.BusDLQFilter{})
		if err != nil || len(list) == 0 {
			t.Fatalf("list %s: %v, %v", q, list, err)
		}
		for _, d := range list {
			if d.EventID == dom.ID && d.From == publisher.FromSubscription && (d.Topic != reservation || d.Bus != "reservation" || d.DetailType != "Reserved") {
				t.Errorf("listed %+v", d)
			}
		}
	}

	sum := b.run("consumer-dlq", ops.BusReplay{})
	if sum.Replayed != 1 || sum.Skipped != 2 || sum.Failed != 0 {
		t.Errorf("wrapped: %+v", sum)
	}
	for _, r := range sum.Results {
		switch {
		case r.ID == dom.ID && r.Action == "replayed":
		case r.ID == other.ID && r.Action == "skipped" && strings.Contains(r.Why, "topic") && strings.Contains(r.Why, "orders"):
		case r.Action == "skipped" && strings.Contains(r.Why, "events.broker is sns"):
		default:
			t.Errorf("wrapped: %+v", r)
		}
	}
	sum = b.run(raw, ops.BusReplay{})
	if sum.Replayed != 1 || sum.Skipped != 1 {
		t.Errorf("raw: %+v", sum)
	}
	for _, r := range sum.Results {
		if r.Action == "skipped" && !strings.Contains(r.Why, "neither an EventBridge rule target's dead letter") {
			t.Errorf("raw: %+v", r)
		}
	}
	got := b.visible(consumer)
	if len(got) != 2 {
		t.Fatalf("the topics delivered %d messages, want the 2 re-emitted events: %v", len(got), got)
	}
	for _, body := range got {
		env, _, err := publisher.ParseEntry([]byte(body))
		want := msgs[env.ID]
		if err != nil || want == nil || body != want.payload || env.EventBusName != want.bus {
			t.Errorf("delivered %s (%v), want one of the published messages byte for byte", body, err)
		}
	}
	if left := b.visible(wrapped); len(left) != 2 {
		t.Errorf("%d left in the wrapped DLQ, want the 2 skipped", len(left))
	}
	if left := b.visible(raw); len(left) != 1 {
		t.Errorf("%d left in the raw DLQ, want the 1 skipped", len(left))
	}
}

type publisherMsg struct{ payload, bus string }

// Only EventBridge and SNS have dead-letter queues of this kind, and emitd's
// own queues are not one.
func TestWhatCannotBeAQueueToReEmitFrom(t *testing.T) {
	b := newBed(t, "aws.yaml")
	for _, q := range []string{"slot-commands", "slot-commands-dlq", "https://sqs.eu-north-1.amazonaws.com/1/slot-command-results"} {
		if _, _, err := b.ops.BusReemitter(ctx, q, ops.BusReplay{DryRun: true, MaxReplays: 3}); err == nil || !strings.Contains(err.Error(), "emitd's own queues") {
			t.Errorf("%s: %v", q, err)
		}
	}
	if _, _, err := b.ops.BusReemitter(ctx, "no-such-queue", ops.BusReplay{DryRun: true}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing queue: %v", err)
	}
	k := newBed(t, "embedded.yaml")
	if _, _, err := k.ops.BusReemitter(ctx, "q", ops.BusReplay{DryRun: true}); err == nil || !strings.Contains(err.Error(), "events.broker is embedded") {
		t.Errorf("events on the embedded broker: %v", err)
	}
}
