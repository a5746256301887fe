package router

import (
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Config is what New needs besides the handler.
type Config struct {
	CommandTopic   string
	DLQTopic       string
	Instance       string
	HandlerTimeout time.Duration
	Retry          RetryPolicy
	// Stopping is closed when the daemon starts stopping: retries end and
	// failures leave the message for redelivery instead of dead-lettering it.
	Stopping <-chan struct{}
}

// New builds the Watermill router that consumes commands. Middleware,
// outermost first: poison queue → retry → recover → timeout → handler.
// (Correlation ids are settled in the handler, where the command is decoded.)
func New(cfg Config, sub message.Subscriber, dlq message.Publisher, h *Handler, logger watermill.LoggerAdapter) (*message.Router, error) {
	// In flight at close: at most the attempt under way (a retry wait ends
	// at once, see Retry), then the time for its ack to leave.
	graceful := &GracefulSubscriber{Subscriber: sub, Timeout: cfg.HandlerTimeout + time.Second, AckSettle: DefaultAckSettle}
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: graceful.Timeout + graceful.AckSettle + 5*time.Second}, logger)
	if err != nil {
		return nil, err
	}
	pq := PoisonQueue{Publisher: dlq, Topic: cfg.DLQTopic, Instance: cfg.Instance,
		Stopping: cfg.Stopping, Stats: h.Stats, Logger: logger, OnDeadLetter: h.DeadLettered}
	policy := cfg.Retry
	policy.AttemptTimeout = cfg.HandlerTimeout
	retry := Retry{Policy: policy, Stopping: cfg.Stopping, Stats: h.Stats, Logger: logger}
	r.AddMiddleware(pq.Middleware, retry.Middleware, Recover, Timeout(cfg.HandlerTimeout))
	r.AddConsumerHandler("slot-commands", cfg.CommandTopic, graceful, h.Handle)
	return r, nil
}
