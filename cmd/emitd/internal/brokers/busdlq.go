package brokers

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/emitd/emitd/adapters/awsconf"
	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/eventbridge"
	"github.com/emitd/emitd/adapters/sns"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// A bus's dead-letter queue (`emitd dlq list --from-queue`, `emitd replay
// --from-queue`): an SQS queue that an EventBridge rule target or an SNS
// subscription sends the events it could not deliver to. This maps its
// messages, in either shape, to the configuration's buses.

// BusDeadLetters says what a bus dead letter must come from to be
// re-emitted on the configuration's events broker: EventBridge takes back
// rule targets' dead letters, SNS subscriptions'. Other brokers have no
// dead-letter queues of this kind.
func BusDeadLetters(cfg *configs.Config) (string, error) {
	if s, ok := broker.Lookup(cfg.Events.Broker); ok && s.BusDeadLetters != "" {
		return s.BusDeadLetters, nil
	}
	return "", fmt.Errorf("--from-queue re-emits to EventBridge or SNS, and events.broker is %s: "+
		"use a configuration whose events go to eventbridge (for a rule target's dead-letter queue) or sns (for a subscription's)", cfg.Events.Broker)
}

// deadLetterQueueConfig is the SQS side of reading a bus's dead-letter
// queue: brokers.sqs's region and endpoint when the configuration has that
// section, else the events broker's region (and, for SNS, its endpoint, as
// `emitd tail` does for its queue); AWS_ENDPOINT_URL_SQS applies either way.
func deadLetterQueueConfig(cfg *configs.Config, logger watermill.LoggerAdapter) sqs.Config {
	if q := sqs.SectionOf(cfg); q != nil {
		return q.AdapterConfig(logger)
	}
	c := sqs.Config{Logger: logger}
	if s := sns.SectionOf(cfg); s != nil {
		c.Region, c.Endpoint = s.Region, s.Endpoint
	} else if eb := eventbridge.SectionOf(cfg); eb != nil {
		c.Region = eb.Region
	}
	return c
}

// ErrOwnQueue: --from-queue named a queue of emitd's own.
var ErrOwnQueue = errors.New("is one of emitd's own queues, not a bus's dead-letter queue")

// OpenBusDLQ opens queue (a name or URL) for one run. A visibility of zero
// hides nothing it reads (listings and dry runs); a replay hides each
// message it reads for visibility, until it deletes it or the run ends.
// emitd's own queues are refused: reading the commands queue would hide
// commands from the daemon, and none of them holds a bus's dead letters.
func OpenBusDLQ(ctx context.Context, cfg *configs.Config, queue string, visibility time.Duration, logger watermill.LoggerAdapter) (*BusDLQ, error) {
	if cfg.Commands.Broker == sqs.BrokerName {
		for _, own := range []struct{ Path, Name string }{{"commands.topic", cfg.Commands.Topic}, {"commands.dlqTopic", cfg.Commands.DLQTopic},
			{"commands.resultsTopic", cfg.Commands.ResultsTopic}} {
			if sqs.SameQueue(queue, own.Name) {
				return nil, fmt.Errorf("queue %s (%s) %w", domain.Quote(queue), own.Path, ErrOwnQueue)
			}
		}
	}
	q, err := sqs.OpenQueue(ctx, deadLetterQueueConfig(cfg, logger), queue)
	if errors.Is(err, sqs.ErrNoQueue) {
		return nil, fmt.Errorf("SQS queue %s does not exist (check the name, or give its URL): %w", domain.Quote(queue), err)
	}
	if err != nil {
		return nil, awsconf.Hint(err, "brokers.sqs.region")
	}
	return &BusDLQ{q: q, cfg: cfg, visibility: visibility, seen: map[string]bool{}, receipts: map[string]string{}}, nil
}

// BusDLQ is one run's reading of a bus's dead-letter queue on SQS
// (publisher.BusDLQ).
type BusDLQ struct {
	q          *sqs.Queue
	cfg        *configs.Config
	visibility time.Duration
	seen       map[string]bool   // message ids returned in this run
	receipts   map[string]string // message id -> its latest receipt, until deleted
}

var _ publisher.BusDLQ = (*BusDLQ)(nil)

// Receives of a run: each waits up to busDLQWait for a first message (a
// long poll asks every SQS server, so an empty answer means an empty
// queue); after busDLQRepeats receives in a row that bring only messages
// seen already, the run has seen what it can. A listing (visibility zero)
// is a sample of the queue then: SQS returns what it chooses, and nothing
// promises that repeated receives go through every message of a large
// queue. A replay hides what it read, so it sees each message once.
const (
	busDLQWait    = time.Second
	busDLQRepeats = 5
)

// Next implements publisher.BusDLQ.
func (b *BusDLQ) Next(ctx context.Context) ([]publisher.BusDeadLetter, error) {
	for repeats := 0; repeats < busDLQRepeats; repeats++ {
		got, err := b.q.Receive(ctx, sqs.MaxBatchEntries, b.visibility, busDLQWait)
		if err != nil {
			return nil, awsconf.Hint(err, "brokers.sqs.region")
		}
		if len(got) == 0 {
			return nil, nil
		}
		var fresh []publisher.BusDeadLetter
		for _, m := range got {
			if b.visibility > 0 {
				b.receipts[m.MessageID] = m.Receipt
			}
			if !b.seen[m.MessageID] {
				b.seen[m.MessageID] = true
				fresh = append(fresh, ReadBusDeadLetter(b.cfg, m))
			}
		}
		if len(fresh) > 0 {
			return fresh, nil
		}
	}
	return nil, nil
}

// Delete implements publisher.BusDLQ.
func (b *BusDLQ) Delete(ctx context.Context, messageID string) error {
	receipt, ok := b.receipts[messageID]
	if !ok {
		return fmt.Errorf("message %s was not received to be deleted", messageID)
	}
	if err := b.q.Delete(ctx, receipt); err != nil {
		return awsconf.Hint(err, "brokers.sqs.region")
	}
	delete(b.receipts, messageID)
	return nil
}

// Held is how many messages the run hides and has not deleted.
func (b *BusDLQ) Held() int { return len(b.receipts) }

// Close implements publisher.BusDLQ: what the run hid and did not delete
// is visible again at once (sqs:ChangeMessageVisibility); without that
// permission it comes back when its visibility timeout ends.
func (b *BusDLQ) Close(ctx context.Context) error {
	var receipts []string
	for _, r := range b.receipts {
		receipts = append(receipts, r)
	}
	b.receipts = map[string]string{}
	if len(receipts) == 0 {
		return nil
	}
	return b.q.Release(ctx, receipts)
}

// maxShown bounds each text field of a dead letter as listings show it:
// they come from outside (an ERROR_MESSAGE is whatever the target said).
const maxShown = 1024

// ReadBusDeadLetter makes out one message of a bus's dead-letter queue:
// which kind it is, its event, and the configuration's bus the event goes
// back to. What makes it impossible to re-emit goes into Problem, bounded.
func ReadBusDeadLetter(cfg *configs.Config, m sqs.Received) publisher.BusDeadLetter {
	d := publisher.BusDeadLetter{MessageID: m.MessageID, Sent: m.Sent, Receives: m.Receives}
	if eventbridge.IsTargetDeadLetter(m.Attributes) {
		d.From = publisher.FromRuleTarget
		t, err := eventbridge.ParseTargetDeadLetter(m.Body, m.Attributes)
		d.Rule, d.Target, d.ErrorCode = clip(t.RuleARN), clip(t.TargetARN), clip(t.ErrorCode)
		d.ErrorMessage, d.Exhausted, d.Attempts = clip(t.ErrorMessage), clip(t.ExhaustedRetryCondition), t.RetryAttempts
		d.DetailType = clip(t.Event.DetailType)
		if err != nil {
			d.Problem = err.Error()
			return d
		}
		onBus, _, err := eventbridge.RuleBus(t.RuleARN)
		if err != nil {
			d.Problem = err.Error()
			return d
		}
		bus, ok := ruleTargetBus(cfg, onBus)
		if !ok {
			d.Problem = fmt.Sprintf("the rule is on bus %s, which is neither events.domainBus (%q) nor events.analyticsBus (%q): "+
				"emitd only re-emits to its own buses", domain.Quote(onBus), cfg.Events.DomainBus, cfg.Events.AnalyticsBus)
			return d
		}
		env, res, err := t.Envelope(bus)
		if err != nil {
			d.Problem = err.Error()
			return d
		}
		d.Bus, d.EventID, d.Envelope, d.Resources = bus, env.ID, env, res
		return d
	}

	s, err := sns.ParseSubscriptionDeadLetter(m.Body)
	d.From = publisher.FromSubscription
	if err != nil {
		d.Problem = err.Error()
		return d
	}
	env, res, err := publisher.ParseEntry([]byte(s.Message))
	d.DetailType, d.EventID = clip(env.DetailType), env.ID
	if err != nil {
		if s.Raw {
			d.From = publisher.FromUnknown
			d.Problem = "neither an EventBridge rule target's dead letter (it has no RULE_ARN attribute) nor an SNS " +
				"subscription's (it is no SNS notification, and delivered raw, " + err.Error() + ")"
			return d
		}
		d.Problem = "the SNS message is " + err.Error()
		return d
	}
	var bus string
	if s.Raw {
		// Raw delivery names no topic: the entry names its bus.
		b, ok := configuredBus(cfg, env.EventBusName)
		if !ok {
			d.Problem = fmt.Sprintf("the entry names bus %s, which is neither events.domainBus (%q) nor events.analyticsBus (%q)",
				domain.Quote(env.EventBusName), cfg.Events.DomainBus, cfg.Events.AnalyticsBus)
			return d
		}
		bus = b
	} else {
		d.Topic = clip(s.Notification.TopicArn)
		b, ok := subscriptionBus(cfg, s.Notification.TopicArn)
		if !ok {
			d.Problem = fmt.Sprintf("topic %s is neither events.domainBus (%q) nor events.analyticsBus (%q): emitd only re-emits to its own buses",
				domain.Quote(s.Notification.TopicArn), cfg.Events.DomainBus, cfg.Events.AnalyticsBus)
			return d
		}
		if env.EventBusName != b {
			d.Problem = fmt.Sprintf("the entry names bus %s, but it was published to topic %s (%s)",
				domain.Quote(env.EventBusName), domain.Quote(s.Notification.TopicArn), b)
			return d
		}
		bus = b
	}
	d.Bus, d.Envelope, d.Resources, d.Payload = bus, env, res, []byte(s.Message)
	return d
}

// ruleTargetBus is the configuration's bus (a name or an ARN) that is the
// event bus named onBus.
func ruleTargetBus(cfg *configs.Config, onBus string) (string, bool) {
	for _, b := range []string{cfg.Events.DomainBus, cfg.Events.AnalyticsBus} {
		if b != "" && eventbridge.BusName(b) == onBus {
			return b, true
		}
	}
	return "", false
}

// subscriptionBus is the configuration's bus (a topic name or ARN) that is
// the topic topicArn.
func subscriptionBus(cfg *configs.Config, topicArn string) (string, bool) {
	for _, b := range []string{cfg.Events.DomainBus, cfg.Events.AnalyticsBus} {
		if b != "" && (b == topicArn || (!sns.IsTopicARN(b) && b == sns.TopicName(topicArn))) {
			return b, true
		}
	}
	return "", false
}

func configuredBus(cfg *configs.Config, bus string) (string, bool) {
	if bus != "" && (bus == cfg.Events.DomainBus || bus == cfg.Events.AnalyticsBus) {
		return bus, true
	}
	return "", false
}

func clip(s string) string {
	if len(s) <= maxShown {
		return s
	}
	n := maxShown
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + fmt.Sprintf("… (%d bytes)", len(s))
}
