package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// Handler executes one command: decode and validate, skip if already
// processed, let the aggregate decide, commit state + envelopes + command id
// in one transaction, then tell the sender the outcome.
type Handler struct {
	Store        domain.Store
	Aggregate    domain.Aggregate
	Factory      domain.EnvelopeFactory
	Results      message.Publisher
	ResultsTopic string
	Now          func() time.Time
	OnCommit     func() // wakes the relay
	Stats        *Stats
	Logger       watermill.LoggerAdapter
}

// Handle implements message.NoPublishHandlerFunc.
func (h *Handler) Handle(msg *message.Message) error {
	cmd, err := domain.ParseCommand(msg.Payload)
	if err != nil {
		return err // an *InvalidCommandError: permanent
	}
	ctx := msg.Context()
	corr := cmd.CorrelationID
	if corr == "" {
		corr = msg.Metadata.Get(publisher.MetaCorrelationID)
	}
	if corr == "" {
		// The command enters the system here without one. The message itself
		// stays as it came (a dead letter must keep the original metadata);
		// only the attempt that commits hands its id on to the events.
		corr = uuid.NewString()
	}

	if prev, done, err := h.Store.ProcessedOutcome(ctx, cmd.ID); err != nil {
		return fmt.Errorf("look up command %s: %w", cmd.ID, err)
	} else if done {
		h.Stats.duplicate()
		return h.publishOutcome(ctx, prev)
	}

	now := h.Now()
	outcome := domain.Outcome{CommandID: cmd.ID, CorrelationID: corr, Type: cmd.Type,
		Status: domain.OutcomeAccepted, At: now}
	commit := domain.Commit{}
	decision, err := h.Aggregate.Decide(ctx, cmd, now, h.Store)
	var rejected *domain.RejectedError
	switch {
	case errors.As(err, &rejected):
		outcome.Status, outcome.Reason = domain.OutcomeRejected, rejected.Reason
	case err != nil:
		return fmt.Errorf("decide %s %s: %w", cmd.Type, cmd.ID, err)
	default:
		envs, err := h.Factory.Events(decision, corr, now)
		if err != nil {
			return MarkPermanent(fmt.Errorf("make envelopes for %s %s: %w", cmd.Type, cmd.ID, err))
		}
		for _, c := range decision.Changes {
			commit.Slots = append(commit.Slots, c.Slot)
		}
		commit.Envelopes = envs
		for _, e := range envs {
			outcome.EventIDs = append(outcome.EventIDs, e.ID)
		}
	}
	commit.Outcome = outcome

	switch err := h.Store.Commit(ctx, commit); {
	case errors.Is(err, domain.ErrDuplicateCommand):
		// Another instance (or an earlier delivery) won the race: answer as it did.
		prev, _, lerr := h.Store.ProcessedOutcome(ctx, cmd.ID)
		if lerr != nil {
			return lerr
		}
		h.Stats.duplicate()
		return h.publishOutcome(ctx, prev)
	case err != nil:
		return fmt.Errorf("commit %s %s: %w", cmd.Type, cmd.ID, err)
	}
	if len(commit.Envelopes) > 0 && h.OnCommit != nil {
		h.OnCommit()
	}
	if outcome.Status == domain.OutcomeRejected {
		h.Stats.rejected(string(cmd.Type) + "." + rejected.Code)
		h.Logger.Info("command rejected", watermill.LogFields{"command_id": cmd.ID, "type": cmd.Type, "reason": outcome.Reason})
	} else {
		h.Stats.accepted()
	}
	return h.publishOutcome(ctx, outcome)
}

// publishOutcome sends the outcome to the results topic. If that fails the
// command is retried; being processed already, it only re-sends the outcome.
func (h *Handler) publishOutcome(ctx context.Context, o domain.Outcome) error {
	payload, err := json.Marshal(o)
	if err != nil {
		return err
	}
	// A fresh message id: a redelivered command is answered again, and a
	// broker that drops repeated message ids (JetStream) must not swallow it.
	msg := message.NewMessage(uuid.NewString(), payload)
	msg.SetContext(ctx) // bounded by the attempt's timeout, for publishers that honour it
	msg.Metadata.Set(publisher.MetaCorrelationID, o.CorrelationID)
	if err := h.Results.Publish(h.ResultsTopic, msg); err != nil {
		return fmt.Errorf("publish outcome of %s: %w", o.CommandID, err)
	}
	return nil
}

// DeadLettered answers the sender of a command that went to the poison
// queue, so that every command gets an outcome. The bytes may not be a
// command at all: the ids are taken where they can be found, else the
// message id stands for the command id. A failure here is only logged: the
// dead letter itself is safe in the poison queue.
func (h *Handler) DeadLettered(msg *message.Message, reason string) {
	var ids struct {
		Type          domain.CommandType `json:"type"`
		ID            string             `json:"id"`
		CorrelationID string             `json:"correlationId"`
	}
	_ = json.Unmarshal(msg.Payload, &ids) // best effort: garbage keeps the zero values
	o := domain.Outcome{CommandID: ids.ID, CorrelationID: ids.CorrelationID, Type: ids.Type,
		Status: domain.OutcomeDeadLettered, Reason: reason, At: h.Now()}
	if o.CommandID == "" {
		o.CommandID = msg.UUID
	}
	if o.CorrelationID == "" {
		o.CorrelationID = msg.Metadata.Get(publisher.MetaCorrelationID)
	}
	if err := h.publishOutcome(context.WithoutCancel(msg.Context()), o); err != nil {
		h.Logger.Error("could not answer a dead-lettered command", err, watermill.LogFields{"command_id": o.CommandID})
	}
}
