package broker_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	_ "github.com/emitd/emitd/adapters/all"
	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/configs"
)

// Every broker of the build is known both to Open and to configurations,
// with its roles: SNS and EventBridge carry events only.
func TestEveryBrokerIsRegisteredOnce(t *testing.T) {
	want := []string{"amqp", "embedded", "eventbridge", "kafka", "nats", "sns", "sqs"}
	if got := broker.Names(); !slices.Equal(got, want) {
		t.Errorf("broker.Names() = %v, want %v", got, want)
	}
	if got := configs.BrokerNames(); !slices.Equal(got, want) {
		t.Errorf("configs.BrokerNames() = %v, want %v", got, want)
	}
	for _, n := range want {
		s, _ := broker.Lookup(n)
		eventsOnly := n == "sns" || n == "eventbridge"
		if !s.Events || s.Commands == eventsOnly {
			t.Errorf("%s: commands %v, events %v", n, s.Commands, s.Events)
		}
	}
	_, err := broker.Open(context.Background(), "carrier-pigeon", &configs.Config{}, nil)
	if err == nil || !strings.Contains(err.Error(), `broker "carrier-pigeon" is not available in this build`) {
		t.Errorf("unknown broker: %v", err)
	}
}
