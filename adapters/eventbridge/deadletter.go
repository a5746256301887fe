package eventbridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws/arn"

	"github.com/emitd/emitd/domain"
)

// A rule target's dead-letter queue. When EventBridge gives up delivering
// an event to one target of a rule (its retry policy, MaximumRetryAttempts
// and MaximumEventAgeInSeconds, ran out, or the error is one it does not
// retry), and the target has a dead-letter queue (an SQS queue), it sends
// the event there: the body is the event as targets receive it, and six
// message attributes say what failed. These are the AWS-documented names.
const (
	AttrRuleARN                 = "RULE_ARN"
	AttrTargetARN               = "TARGET_ARN"
	AttrErrorCode               = "ERROR_CODE"    // e.g. SDK_CLIENT_ERROR, NO_PERMISSIONS, RESOURCE_NOT_FOUND
	AttrErrorMessage            = "ERROR_MESSAGE" // the target service's words
	AttrExhaustedRetryCondition = "EXHAUSTED_RETRY_CONDITION"
	AttrRetryAttempts           = "RETRY_ATTEMPTS" // a Number attribute
)

// TargetDeadLetter is one message of a rule target's dead-letter queue.
type TargetDeadLetter struct {
	// Event is the event as EventBridge delivers it to targets:
	// {"version","id","detail-type","source","account","time","region",
	// "resources","detail"}, with the detail as JSON (its bytes as they
	// came, in Event.Detail). aws-lambda-go's definition of it is AWS's own.
	Event                                       events.EventBridgeEvent
	RuleARN, TargetARN, ErrorCode, ErrorMessage string
	ExhaustedRetryCondition                     string // MaximumRetryAttempts or MaximumEventAgeInSeconds
	RetryAttempts                               int
}

// IsTargetDeadLetter says whether message attributes are those of a rule
// target's dead letter: EventBridge always sets RULE_ARN.
func IsTargetDeadLetter(attrs map[string]string) bool {
	_, ok := attrs[AttrRuleARN]
	return ok
}

// ParseTargetDeadLetter reads a rule target's dead letter. The attributes
// are read whatever the body holds, so that a dead letter whose body is
// not an event still shows its rule, target and error; the error says what
// is wrong with the body, bounded.
func ParseTargetDeadLetter(body string, attrs map[string]string) (TargetDeadLetter, error) {
	d := TargetDeadLetter{
		RuleARN: attrs[AttrRuleARN], TargetARN: attrs[AttrTargetARN],
		ErrorCode: attrs[AttrErrorCode], ErrorMessage: attrs[AttrErrorMessage],
		ExhaustedRetryCondition: attrs[AttrExhaustedRetryCondition],
	}
	d.RetryAttempts, _ = strconv.Atoi(strings.TrimSpace(attrs[AttrRetryAttempts]))
	if err := json.Unmarshal([]byte(body), &d.Event); err != nil {
		// A decode error can quote the input (a "time" that is not one):
		// bounded.
		return d, fmt.Errorf("the body is not an EventBridge event: %s", domain.Excerpt(err.Error()))
	}
	switch {
	case d.Event.Detail == nil:
		return d, errors.New("the event has no detail")
	case d.Event.DetailType == "":
		return d, errors.New("the event has no detail-type")
	case d.Event.Source == "":
		return d, errors.New("the event has no source")
	}
	return d, nil
}

// Envelope is the event to send again to bus: its source, detail-type and
// detail, the detail's bytes as delivered (nothing added: metadata.id stays
// as it was, so consumers can still drop repeats), and its resources (none
// when it named none).
func (d TargetDeadLetter) Envelope(bus string) (domain.Envelope, []string, error) {
	env, err := domain.EnvelopeOf(bus, d.Event.Source, d.Event.DetailType, string(d.Event.Detail))
	if err != nil {
		return domain.Envelope{}, nil, err
	}
	var res []string
	if len(d.Event.Resources) > 0 {
		res = d.Event.Resources
	}
	return env, res, nil
}

// RuleBus returns the event bus of a rule, and the rule's name, from its
// ARN: arn:aws:events:REGION:ACCOUNT:rule/BUS/NAME for a rule on a custom
// bus, arn:aws:events:REGION:ACCOUNT:rule/NAME on the default bus ("default").
func RuleBus(ruleARN string) (bus, rule string, err error) {
	a, err := arn.Parse(ruleARN)
	if err != nil || a.Service != "events" || !strings.HasPrefix(a.Resource, "rule/") {
		return "", "", fmt.Errorf("RULE_ARN %s is not the ARN of an EventBridge rule (arn:aws:events:REGION:ACCOUNT:rule/[BUS/]NAME)",
			domain.Quote(ruleARN))
	}
	// Rule names have no slash; bus names may (partner buses:
	// aws.partner/example.com/123/name): the rule is after the last one.
	path := strings.TrimPrefix(a.Resource, "rule/")
	i := strings.LastIndex(path, "/")
	if i < 0 {
		return "default", path, nil
	}
	bus, rule = path[:i], path[i+1:]
	if bus == "" || rule == "" {
		return "", "", fmt.Errorf("RULE_ARN %s names no bus and rule", domain.Quote(ruleARN))
	}
	return bus, rule, nil
}

// BusName reduces an event bus given by ARN (arn:aws:events:…:event-bus/NAME)
// to its name; a name is returned as it is.
func BusName(bus string) string {
	if a, err := arn.Parse(bus); err == nil && a.Service == "events" {
		if name, ok := strings.CutPrefix(a.Resource, "event-bus/"); ok {
			return name
		}
	}
	return bus
}
