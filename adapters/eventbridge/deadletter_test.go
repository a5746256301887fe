package eventbridge_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/emitd/emitd/adapters/eventbridge"
	"github.com/emitd/emitd/adapters/eventbridge/ebtest"
	"github.com/emitd/emitd/publisher"
)

// The attributes AWS documents for a rule target's dead letter, as they
// arrive (RETRY_ATTEMPTS is a Number attribute: its text).
func targetAttrs(rule string) map[string]string {
	return map[string]string{
		"RULE_ARN":                  rule,
		"TARGET_ARN":                "arn:aws:lambda:eu-north-1:123456789012:function:OpenSlot",
		"ERROR_CODE":                "SDK_CLIENT_ERROR",
		"ERROR_MESSAGE":             "Unable to invoke Lambda function: Rate Exceeded.",
		"EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
		"RETRY_ATTEMPTS":            "3",
	}
}

// detail is an emitd Detail with what a JSON re-encoding would change: an
// escaped "<", an escaped slash, a non-ASCII name.
const detail = `{"metadata":{"timestamp":"2026-11-25T09:00:00.000Z","id":"6f1c0c6e-1111-4222-8333-944455556666","correlationId":"a2b"},` +
	`"data":{"event":"OPENED","slotId":"0128c8d4-0000-4000-8000-000000000001","hostName":"S\u00e9bastien \u003cx\u003e \/ y"}}`

// The event as targets receive it: the detail as JSON, not as a string.
func deliveredEvent(detail string, resources string) string {
	return `{"version":"0","id":"5a2e3f4b-0000-4000-8000-000000000009","detail-type":"Opened",` +
		`"source":"reservation.slotreservation.opened","account":"123456789012","time":"2026-11-25T09:00:01Z",` +
		`"region":"eu-north-1","resources":` + resources + `,"detail":` + detail + `}`
}

func TestParseTargetDeadLetter(t *testing.T) {
	rule := "arn:aws:events:eu-north-1:123456789012:rule/reservation/ReservationBusDlq"
	d, err := eventbridge.ParseTargetDeadLetter(deliveredEvent(detail, `["arn:aws:s3:::bucket"]`), targetAttrs(rule))
	if err != nil {
		t.Fatal(err)
	}
	if d.RuleARN != rule || d.TargetARN != "arn:aws:lambda:eu-north-1:123456789012:function:OpenSlot" || d.ErrorCode != "SDK_CLIENT_ERROR" ||
		d.ErrorMessage != "Unable to invoke Lambda function: Rate Exceeded." || d.ExhaustedRetryCondition != "MaximumRetryAttempts" || d.RetryAttempts != 3 {
		t.Errorf("context: %+v", d)
	}
	if d.Event.DetailType != "Opened" || d.Event.Source != "reservation.slotreservation.opened" || d.Event.AccountID != "123456789012" ||
		d.Event.Time.IsZero() || d.Event.ID != "5a2e3f4b-0000-4000-8000-000000000009" {
		t.Errorf("event: %+v", d.Event)
	}
	env, res, err := d.Envelope("reservation")
	if err != nil {
		t.Fatal(err)
	}
	// The detail byte for byte, escapes and all: nothing re-encoded.
	if env.Detail != detail || env.Source != d.Event.Source || env.DetailType != "Opened" || env.EventBusName != "reservation" ||
		env.ID != "6f1c0c6e-1111-4222-8333-944455556666" || env.CorrelationID != "a2b" || env.SlotID != "0128c8d4-0000-4000-8000-000000000001" {
		t.Errorf("envelope: %+v", env)
	}
	if !reflect.DeepEqual(res, []string{"arn:aws:s3:::bucket"}) {
		t.Errorf("resources %v", res)
	}
	d, _ = eventbridge.ParseTargetDeadLetter(deliveredEvent(detail, `[]`), targetAttrs(rule))
	if _, res, _ := d.Envelope("reservation"); res != nil {
		t.Errorf("no resources: %v, want none at all (the entry as emitd made it)", res)
	}
}

func TestParseTargetDeadLetterSaysWhatIsWrong(t *testing.T) {
	rule := "arn:aws:events:eu-north-1:123456789012:rule/reservation/r"
	for _, c := range []struct{ body, says string }{
		{"not json at all", "not an EventBridge event"},
		{`{"version":"0","detail-type":"Opened","source":"s","time":"` + strings.Repeat("9", 10000) + `"}`, "not an EventBridge event"},
		{`{"version":"0","detail-type":"Opened","source":"s"}`, "no detail"},
		{`{"version":"0","source":"s","detail":{}}`, "no detail-type"},
		{`{"version":"0","detail-type":"Opened","detail":{}}`, "no source"},
	} {
		d, err := eventbridge.ParseTargetDeadLetter(c.body, targetAttrs(rule))
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%.50q: %v, want %q", c.body, err, c.says)
		}
		if err != nil && len(err.Error()) > 300 {
			t.Errorf("%.50q: %d-byte error: unbounded", c.body, len(err.Error()))
		}
		if d.ErrorCode != "SDK_CLIENT_ERROR" || d.RuleARN != rule {
			t.Errorf("%.50q: the context is lost with the body: %+v", c.body, d)
		}
	}
	d, _ := eventbridge.ParseTargetDeadLetter(deliveredEvent(`"a string"`, `[]`), targetAttrs(rule))
	if _, _, err := d.Envelope("reservation"); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Errorf("detail that is a string: %v", err)
	}
}

func TestRuleBus(t *testing.T) {
	for _, c := range []struct{ arn, bus, rule string }{
		{"arn:aws:events:eu-north-1:123456789012:rule/reservation/ReservationBusDlq", "reservation", "ReservationBusDlq"},
		{"arn:aws:events:us-east-1:123456789012:rule/my-rule", "default", "my-rule"},
		{"arn:aws:events:us-east-1:123456789012:rule/aws.partner/example.com/123/orders/r1", "aws.partner/example.com/123/orders", "r1"},
	} {
		bus, rule, err := eventbridge.RuleBus(c.arn)
		if err != nil || bus != c.bus || rule != c.rule {
			t.Errorf("%s: %q %q %v", c.arn, bus, rule, err)
		}
	}
	for _, bad := range []string{"", "rule/x", "arn:aws:sqs:us-east-1:123456789012:q", "arn:aws:events:us-east-1:1:event-bus/x",
		"arn:aws:events:us-east-1:1:rule/a/", "arn:aws:events:us-east-1:1:rule/" + strings.Repeat("x", 5000) + "/"} {
		if _, _, err := eventbridge.RuleBus(bad); err == nil || len(err.Error()) > 300 {
			t.Errorf("%.60q: %v", bad, err)
		}
	}
	if eventbridge.BusName("arn:aws:events:eu-north-1:123456789012:event-bus/reservation") != "reservation" || eventbridge.BusName("analytics") != "analytics" {
		t.Error("BusName")
	}
}

// Resources of a re-emitted event reach PutEvents as given; emitd's own
// events send none.
func TestResourcesArePutAsGiven(t *testing.T) {
	s, p := setup(t, ebtest.Options{}, eventbridge.Config{})
	with, err := publisher.EntryMessage(envelope(bus, 1, ""), []string{"arn:aws:s3:::a", "arn:aws:s3:::b"})
	if err != nil {
		t.Fatal(err)
	}
	without := messages(t, envelope(bus, 2, ""))[0]
	if err := p.Publish(bus, with, without); err != nil {
		t.Fatal(err)
	}
	acc := s.Accepted()
	if len(acc) != 2 || !reflect.DeepEqual(acc[0].Resources, []string{"arn:aws:s3:::a", "arn:aws:s3:::b"}) || acc[1].Resources != nil {
		t.Fatalf("accepted %+v", acc)
	}
	if acc[0].Detail != envelope(bus, 1, "").Detail {
		t.Errorf("detail %q", acc[0].Detail)
	}
}
