package brokers

import (
	"time"

	"github.com/emitd/emitd/configs"
)

// SettleTime is how long a new reader may take before the first message of a
// non-empty topic reaches it. Kafka consumer groups spend seconds joining
// and balancing; the others deliver at once.
func SettleTime(kind string) time.Duration {
	if kind == configs.BrokerKafka {
		return 10 * time.Second
	}
	return 2 * time.Second
}
