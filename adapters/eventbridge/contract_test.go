package eventbridge_test

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/contract"
	"github.com/emitd/emitd/adapters/eventbridge"
	"github.com/emitd/emitd/adapters/eventbridge/ebtest"
)

// TestContract runs the publish side of the shared contract: EventBridge has
// no subscriber, so what it accepted is read back from the PutEvents test
// server, rebuilt as the entry JSON the adapter was given.
func TestContract(t *testing.T) {
	var n atomic.Int64
	var srv *ebtest.Server
	contract.RunPublisher(t, contract.PublisherFactory{
		Name: "eventbridge",
		NewPublisher: func(t *testing.T) message.Publisher {
			var p *eventbridge.Publisher
			var buses []string // the buses NewTopic hands out
			for i := int64(1); i <= n.Load()+3; i++ {
				buses = append(buses, fmt.Sprintf("contract-bus-%d", i))
			}
			srv, p = setup(t, ebtest.Options{Buses: buses, RejectUnknownBus: true}, eventbridge.Config{})
			return p
		},
		NewTopic: func(t *testing.T) string { return fmt.Sprintf("contract-bus-%d", n.Add(1)) },
		ReadBack: func(t *testing.T, topic string, want int) []contract.Delivered {
			deadline := time.Now().Add(contract.WaitTimeout)
			for {
				var out []contract.Delivered
				for _, e := range srv.Accepted() {
					if e.Bus != topic {
						continue
					}
					body, err := json.Marshal(struct{ EventBusName, Source, DetailType, Detail string }{e.Bus, e.Source, e.DetailType, e.Detail})
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, contract.Delivered{Body: body})
				}
				if len(out) >= want || time.Now().After(deadline) {
					return out
				}
				time.Sleep(10 * time.Millisecond)
			}
		},
	}, contract.Features{PerKeyOrder: true})
}
