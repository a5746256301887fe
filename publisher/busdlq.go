package publisher

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/domain"
)

// A bus's dead-letter queue holds the events that the bus accepted but could
// not deliver to a consumer: an EventBridge rule target's dead-letter queue,
// or an SNS subscription's. The Reemitter sends such an event again, the
// exact event, to the bus it was on, through the same publisher the relay
// uses; it holds no business logic.

// What a bus dead letter came from.
const (
	FromRuleTarget   = "eventbridge-rule"
	FromSubscription = "sns-subscription"
	FromUnknown      = "unknown" // neither could be made out
)

// BusDeadLetter is one message of a bus's dead-letter queue, as the queue's
// reader made it out: the event to re-emit, and what the bus said about
// it. The text fields come from outside: the reader bounds them.
type BusDeadLetter struct {
	MessageID  string `json:"messageId"` // the queue's id of the message
	From       string `json:"from"`      // FromRuleTarget, FromSubscription or FromUnknown
	EventID    string `json:"eventId,omitempty"`
	DetailType string `json:"detailType,omitempty"`
	// Bus is the configuration's bus the event goes back to: the one the
	// rule is on, or the topic it was published to ("" when neither is one
	// of the configuration's buses: Problem says so).
	Bus          string `json:"bus,omitempty"`
	Rule         string `json:"rule,omitempty"`   // RULE_ARN
	Target       string `json:"target,omitempty"` // TARGET_ARN
	Topic        string `json:"topic,omitempty"`  // the notification's TopicArn
	ErrorCode    string `json:"errorCode,omitempty"`
	ErrorMessage string `json:"errorMessage,omitempty"`
	Exhausted    string `json:"exhaustedRetryCondition,omitempty"`
	Attempts     int    `json:"retryAttempts"`
	// Sent is when the message entered the dead-letter queue; Receives how
	// often the queue has handed it out (this reading included).
	Sent     time.Time `json:"deadLetteredAt"`
	Receives int       `json:"receives"`
	// Replays is how often the event was re-emitted from a dead-letter
	// queue already (the store's count; listings fill it in).
	Replays int `json:"replays"`
	// Problem is why the event cannot be re-emitted, found while reading
	// it (not JSON, no detail, a bus that is not the configuration's...).
	Problem string `json:"problem,omitempty"`

	Envelope  domain.Envelope `json:"-"` // the event, bus set to Bus
	Resources []string        `json:"-"`
	// Payload, when set, is what goes to the bus byte for byte (the message
	// an SNS subscription held); otherwise the entry made from Envelope.
	Payload []byte `json:"-"`
}

// BusDLQ is one run's reading of a bus's dead-letter queue.
type BusDLQ interface {
	// Next returns messages not returned before in this run; none when the
	// queue has no more. A reader that hides what it returns (a replay)
	// hides it until Delete or Close.
	Next(ctx context.Context) ([]BusDeadLetter, error)
	// Delete removes a message returned by Next from the queue.
	Delete(ctx context.Context, messageID string) error
	// Close makes every message returned and not deleted visible again.
	Close(ctx context.Context) error
}

// BusDLQFilter selects bus dead letters; zero fields select everything.
type BusDLQFilter struct {
	EventIDs    []string
	DetailTypes []string
	Rules       []string // a rule's ARN or its name
	ErrorCodes  []string
	// Since and Before bound when the message entered the queue.
	Since, Before time.Time
	// Limit bounds the messages selected (0: all).
	Limit int
}

// Matches reports whether d passes the filter (Limit aside). A field the
// filter asks for that d does not have (a dead letter whose body could not
// be read has no DetailType) does not match.
func (f BusDLQFilter) Matches(d BusDeadLetter) bool {
	if len(f.EventIDs) > 0 && !slices.Contains(f.EventIDs, d.EventID) {
		return false
	}
	if len(f.DetailTypes) > 0 && !slices.Contains(f.DetailTypes, d.Envelope.DetailType) {
		return false
	}
	if len(f.ErrorCodes) > 0 && !slices.Contains(f.ErrorCodes, d.ErrorCode) {
		return false
	}
	if len(f.Rules) > 0 && !slices.ContainsFunc(f.Rules, func(r string) bool {
		// Rule names have no slash: a name is what follows the ARN's last.
		return d.Rule != "" && (d.Rule == r || strings.HasSuffix(d.Rule, "/"+r))
	}) {
		return false
	}
	if !f.Since.IsZero() && d.Sent.Before(f.Since) {
		return false
	}
	if !f.Before.IsZero() && !d.Sent.Before(f.Before) {
		return false
	}
	return true
}

// Reemitter sends the events of a bus's dead-letter queue back to their
// bus, through the events broker's publisher: each message is deleted from
// the queue only after the bus took its event, so a crash in the middle
// loses nothing (the event goes again, with the same metadata.id, and the
// store's count goes up: at least once). What it does not send (filtered
// out, refused, failed) stays in the queue.
type Reemitter struct {
	Queue BusDLQ
	Store EventReplayStore
	// Events is the configuration's events publisher (unused by a dry run).
	Events message.Publisher
	// Accepts is what the events broker can take back: FromRuleTarget for
	// EventBridge, FromSubscription for SNS; Broker names it for messages.
	Accepts, Broker string
	Policy          *Policy
	MaxReplays      int
	DryRun          bool
	Filter          BusDLQFilter
}

// Run reads the queue to its end (or Filter.Limit) and re-emits what the
// filter selects and the guards let through: the emit policy, and the loop
// guard (an event re-emitted MaxReplays times already stays where it is).
// The Results name each selected message. Closing the queue is the
// caller's.
func (r *Reemitter) Run(ctx context.Context) (Summary, error) {
	var s Summary
	delivered := map[string]string{} // bus + event id -> the message whose re-emit the bus took
	selected := 0
	for r.Filter.Limit <= 0 || selected < r.Filter.Limit {
		batch, err := r.Queue.Next(ctx)
		if err != nil {
			return s, err
		}
		if len(batch) == 0 {
			return s, nil
		}
		var counts map[string]int
		if r.DryRun {
			if counts, err = r.Store.EventReplays(ctx, eventIDs(batch)); err != nil {
				return s, err
			}
		}
		for _, d := range batch {
			if !r.Filter.Matches(d) {
				s.Unselected++
				continue
			}
			if r.Filter.Limit > 0 && selected >= r.Filter.Limit {
				s.Unselected++
				continue
			}
			selected++
			res := ReplayResult{ID: d.EventID, Kind: KindEvent, Origin: d.Bus, DetailType: d.DetailType, MessageID: d.MessageID}
			key := d.Bus + "\x00" + d.EventID
			switch why := r.refuse(d); {
			case why != "":
				res.Action, res.Why = "skipped", why
				s.Skipped++
			case delivered[key] != "":
				// One event, several dead letters (two targets of a rule, two
				// subscriptions of a topic): the bus took it again already,
				// and every consumer has it once more.
				res.Action, res.Why = r.again(ctx, d, delivered[key])
				if res.Action == "failed" {
					s.Failed++
				} else {
					s.Replayed++
				}
			case r.DryRun:
				if n := counts[d.EventID]; n >= r.MaxReplays {
					res.Action, res.Why = "skipped", loopLimit(n, r.MaxReplays)
					s.Skipped++
					break
				}
				res.Action = "would-replay"
				s.Replayed++
				delivered[key] = d.MessageID
			default:
				res.Action, res.Why = r.reemit(ctx, d)
				switch res.Action {
				case "replayed":
					s.Replayed++
					delivered[key] = d.MessageID
				case "skipped":
					s.Skipped++
				default:
					s.Failed++
					if strings.HasPrefix(res.Why, reemittedButKept) {
						delivered[key] = d.MessageID
					}
				}
			}
			s.Results = append(s.Results, res)
		}
	}
	return s, nil // the limit: what is not read yet stays as it is
}

// refuse says why d must not go back, or "".
func (r *Reemitter) refuse(d BusDeadLetter) string {
	switch {
	case d.Problem != "":
		return d.Problem
	case d.From != r.Accepts:
		return fmt.Sprintf("%s, but events.broker is %s: re-emit it with a configuration whose events go to %s",
			describeFrom(d.From), r.Broker, wantsBroker(d.From))
	}
	if err := r.Policy.Check(d.Bus, d.Envelope.DetailType); err != nil {
		return err.Error()
	}
	return ""
}

// reemittedButKept starts the reason of a message whose event the bus took
// but that could not be deleted from the queue.
const reemittedButKept = "re-emitted, but not deleted from the queue"

// reemit takes a replay from the store's count, publishes, and deletes the
// message once the bus took the event. A replay taken for a publish that
// failed is given back: only a crash between the two (nothing lost, the
// count one too high) keeps it.
func (r *Reemitter) reemit(ctx context.Context, d BusDeadLetter) (action, why string) {
	n, taken, err := r.Store.TakeEventReplay(ctx, d.EventID, r.MaxReplays)
	if err != nil {
		return "failed", "cannot count the replay in the store: " + err.Error()
	}
	if !taken {
		return "skipped", loopLimit(n, r.MaxReplays)
	}
	if err := r.publish(ctx, d); err != nil {
		if rerr := r.Store.ReturnEventReplay(ctx, d.EventID); rerr != nil {
			err = fmt.Errorf("%w (and the replay stays counted: %v)", err, rerr)
		}
		return "failed", err.Error()
	}
	if err := r.Queue.Delete(ctx, d.MessageID); err != nil {
		// The bus has the event: a later run sends it again (consumers drop
		// the repeat by metadata.id), and counts it.
		return "failed", fmt.Sprintf("%s (it will be re-emitted again): %v", reemittedButKept, err)
	}
	return "replayed", ""
}

// again handles a second dead letter of an event the bus took in this run.
func (r *Reemitter) again(ctx context.Context, d BusDeadLetter, first string) (action, why string) {
	why = fmt.Sprintf("the same event as message %s, re-emitted once in this run", first)
	if r.DryRun {
		return "would-replay", why
	}
	if err := r.Queue.Delete(ctx, d.MessageID); err != nil {
		return "failed", fmt.Sprintf("%s; cannot delete this one from the queue: %v", why, err)
	}
	return "replayed", why
}

// publish sends d's event through the events publisher, as the relay
// sends an envelope: the entry JSON, the same metadata, the event id as
// the message id.
func (r *Reemitter) publish(ctx context.Context, d BusDeadLetter) error {
	msg, err := EntryMessage(d.Envelope, d.Resources)
	if err != nil {
		return err
	}
	if d.Payload != nil {
		msg.Payload = d.Payload
	}
	msg.SetContext(ctx)
	err = r.Events.Publish(d.Bus, msg)
	if be, ok := AsBatchError(err); ok {
		if e := be.Refused[msg.UUID]; e != nil {
			return fmt.Errorf("the bus refused it: %w", e)
		}
		if e := be.Pending[msg.UUID]; e != nil {
			return fmt.Errorf("the bus did not take it: %w", e)
		}
		return nil // named in neither: delivered
	}
	if err != nil {
		return fmt.Errorf("the bus did not take it: %w", err)
	}
	return nil
}

func loopLimit(n, max int) string {
	return fmt.Sprintf("re-emitted %d times already (--max-replays %d): the loop guard keeps it in the queue; fix the consumer, "+
		"or raise --max-replays", n, max)
}

func describeFrom(from string) string {
	if from == FromRuleTarget {
		return "an EventBridge rule target's dead letter"
	}
	return "an SNS subscription's dead letter"
}

func wantsBroker(from string) string {
	if from == FromRuleTarget {
		return "eventbridge"
	}
	return "sns"
}

func eventIDs(ds []BusDeadLetter) []string {
	var ids []string
	for _, d := range ds {
		if d.EventID != "" {
			ids = append(ids, d.EventID)
		}
	}
	return ids
}
