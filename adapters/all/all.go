// Package all links every broker into a build: importing it registers each
// one (adapters/broker.Register runs in each broker's init). The binary
// imports it through cmd/emitd/internal/brokers; tests that load
// configurations naming any broker import it too.
//
// Adding a broker: its own package under adapters/, registering itself from
// its init, and one line here.
package all

import (
	_ "github.com/emitd/emitd/adapters/amqp"        // amqp
	_ "github.com/emitd/emitd/adapters/eventbridge" // eventbridge
	_ "github.com/emitd/emitd/adapters/kafka"       // kafka
	_ "github.com/emitd/emitd/adapters/natsjs"      // embedded, nats
	_ "github.com/emitd/emitd/adapters/sns"         // sns
	_ "github.com/emitd/emitd/adapters/sqs"         // sqs
)
