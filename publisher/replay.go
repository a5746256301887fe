package publisher

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// SyncDeadLetters moves what waits in a poison queue topic into the dead
// letter store, so that list, show, purge and replay work the same on every
// broker (a Kafka topic cannot delete one message, an SQS queue cannot be
// browsed without hiding what it shows). Each message is acknowledged only
// once it is stored: a crash in between stores it twice at worst, and the
// store keeps one.
// It waits up to first for the first message (consumer groups take a while to
// join on some brokers), then up to idle between messages.
func SyncDeadLetters(ctx context.Context, sub message.Subscriber, topic string, store DeadLetterStore, first, idle time.Duration) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("read poison queue %s: %w", topic, err)
	}
	n := 0
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-timer.C:
			return n, nil
		case msg, ok := <-ch:
			if !ok {
				return n, nil
			}
			if err := store.AddDeadLetters(ctx, []DeadLetter{CommandDeadLetter(msg)}); err != nil {
				msg.Nack()
				return n, fmt.Errorf("store dead letter %s: %w", msg.UUID, err)
			}
			msg.Ack()
			n++
			timer.Reset(idle)
		}
	}
}

// Replayer puts dead letters back where they came from: commands to their
// topic, events to their bus. It holds no business logic: what goes back is
// the original payload and metadata, with the replay count raised.
type Replayer struct {
	Store        DeadLetterStore
	CommandTopic string            // the only topic a command may go back to
	ResultsTopic string            // the only topic an outcome may go back to
	Commands     message.Publisher // publishes to the commands broker
	Events       message.Publisher // publishes to the events broker
	Policy       *Policy
	// Format is the events bus's format: an event goes back in it, whatever
	// the format was when it was dead-lettered (event dead letters keep the
	// envelope as an EventBridge entry, emitd's own form).
	Format     Format
	MaxReplays int
	DryRun     bool
	Logger     watermill.LoggerAdapter
}

// ReplayResult is what happened to one dead letter.
type ReplayResult struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Origin string `json:"origin"`
	// DetailType and MessageID are set for an event from a bus's
	// dead-letter queue (the id of the queue's message).
	DetailType string `json:"detailType,omitempty"`
	MessageID  string `json:"messageId,omitempty"`
	// Action: replayed, would-replay (dry run), skipped, failed.
	Action string `json:"action"`
	Why    string `json:"why,omitempty"`
}

// Summary counts the results.
type Summary struct {
	Replayed, Skipped, Failed int
	// Unselected counts the messages of a bus's dead-letter queue that the
	// filters left alone (they stay where they are, unreported).
	Unselected int
	Results    []ReplayResult
}

// Replay replays the dead letters that f selects, one at a time: publish,
// then delete from the store. A crash between the two replays it again later
// (at least once), never loses it.
func (r *Replayer) Replay(ctx context.Context, f DeadLetterFilter) (Summary, error) {
	dls, err := r.Store.DeadLetters(ctx, f)
	if err != nil {
		return Summary{}, err
	}
	var s Summary
	for _, d := range dls {
		res := ReplayResult{ID: d.ID, Kind: d.Kind, Origin: d.Origin}
		msg, pub, why := r.prepare(d)
		switch {
		case why != "":
			res.Action, res.Why = "skipped", why
			s.Skipped++
		case r.DryRun:
			res.Action = "would-replay"
			s.Replayed++
		default:
			if err := pub.Publish(d.Origin, msg); err != nil {
				res.Action, res.Why = "failed", err.Error()
				s.Failed++
				break
			}
			if _, err := r.Store.DeleteDeadLetters(ctx, []DeadLetterKey{d.Key()}); err != nil {
				// Published but still listed: a later replay sends it again,
				// and the command id / event id lets the receiver drop it.
				res.Action, res.Why = "failed", "replayed, but could not remove the dead letter: "+err.Error()
				s.Failed++
				break
			}
			res.Action = "replayed"
			s.Replayed++
		}
		s.Results = append(s.Results, res)
	}
	return s, nil
}

// prepare checks a dead letter and builds the message to re-publish, or says
// why it must not go back.
func (r *Replayer) prepare(d DeadLetter) (*message.Message, message.Publisher, string) {
	if Digest(d.Payload) != d.Digest {
		return nil, nil, fmt.Sprintf("payload does not match its digest (sha256 %s): changed since it was dead-lettered; refusing", short(d.Digest))
	}
	if d.Replays >= r.MaxReplays {
		return nil, nil, fmt.Sprintf("replayed %d times already (--max-replays %d): fix the cause, or purge it", d.Replays, r.MaxReplays)
	}
	if d.Origin == "" {
		return nil, nil, "no original topic or bus recorded"
	}
	msg := ReplayMessage(d)
	switch d.Kind {
	case KindCommand:
		if d.Origin != r.CommandTopic {
			return nil, nil, fmt.Sprintf("came from %q, not from the commands topic %q: emitd only replays its own commands", d.Origin, r.CommandTopic)
		}
		return msg, r.Commands, ""
	case KindOutcome:
		if d.Origin != r.ResultsTopic {
			return nil, nil, fmt.Sprintf("outcome for %q, not for the results topic %q", d.Origin, r.ResultsTopic)
		}
		msg.UUID = d.ID // an outcome keeps its id, like an event
		return msg, r.Commands, ""
	case KindEvent:
		// The policy is checked on the bytes that would be published (the
		// digest vouches for them), not on the metadata beside them.
		env, err := FromMessage(msg)
		if err != nil {
			return nil, nil, err.Error()
		}
		if env.EventBusName != d.Origin {
			return nil, nil, fmt.Sprintf("entry names bus %q, dead letter says %q", env.EventBusName, d.Origin)
		}
		if dt := d.Metadata[MetaDetailType]; dt != env.DetailType {
			return nil, nil, fmt.Sprintf("metadata says detail-type %q, the entry %q", dt, env.DetailType)
		}
		if err := r.Policy.Check(env.EventBusName, env.DetailType); err != nil {
			return nil, nil, err.Error()
		}
		if !r.Format.CloudEvents() {
			msg.UUID = env.ID // events keep their id: consumers de-duplicate by it
			return msg, r.Events, ""
		}
		out, err := r.Format.Message(env)
		if err != nil {
			return nil, nil, err.Error()
		}
		out.Metadata.Set(DLQReplays, msg.Metadata.Get(DLQReplays))
		out.UUID = env.ID // events keep their id: consumers de-duplicate by it
		return out, r.Events, ""
	default:
		return nil, nil, fmt.Sprintf("unknown kind %q", d.Kind)
	}
}

// ReplayMessage is the message a replay of d publishes: the original
// payload and metadata (the poison context is not in d.Metadata), with the
// replay count raised. Its id is new: brokers that drop repeated ids
// (JetStream) must not swallow the replay; the command id and event id
// inside stay the same (an event's replay takes its event id back).
func ReplayMessage(d DeadLetter) *message.Message {
	msg := message.NewMessage(watermill.NewUUID(), d.Payload)
	for k, v := range d.Metadata {
		msg.Metadata.Set(k, v)
	}
	msg.Metadata.Set(DLQReplays, strconv.Itoa(d.Replays+1))
	return msg
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}
