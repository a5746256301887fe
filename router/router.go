package router

import (
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// HandlerName names the commands handler (it appears in dead letters).
const HandlerName = "slot-commands"

// New builds the Watermill router that consumes commands through the
// pipeline. Middleware, outermost first: poison queue → recover → Handle.
// Retries and timeouts live in the pipeline, which retries a batch as a
// whole and in order; the poison queue moves what the pipeline
// dead-lettered. It returns the router and the intake (whose Close the
// router calls when it closes).
func New(topic string, sub message.Subscriber, p *Pipeline, pq *PoisonQueue, logger watermill.LoggerAdapter) (*message.Router, *Intake, error) {
	// In flight at close: the batch being committed (at most one attempt,
	// bounded by Pipeline.Timeout), then dead letters being moved (bounded
	// by PoisonQueue.Timeout, twice) and the acks leaving.
	intake := &Intake{Subscriber: sub, Pipeline: p, Timeout: p.Timeout + 2*pq.Timeout + time.Second}
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: intake.Timeout + 5*time.Second}, logger)
	if err != nil {
		return nil, nil, err
	}
	r.AddMiddleware(pq.Middleware, Recover)
	r.AddConsumerHandler(HandlerName, topic, intake, Handle)
	return r, intake, nil
}
