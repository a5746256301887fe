package daemon_test

import (
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
)

// BenchmarkCommands measures commands per second through the whole daemon
// on the embedded default: the command is published to the embedded broker,
// decided, committed to SQLite with its two envelopes, answered on the
// results topic; the relay publishes the envelopes meanwhile. One iteration
// is 500 CreateSlots commands, each creating one slot.
func BenchmarkCommands(b *testing.B) {
	cfg := testConfig(b)
	r := start(b, cfg)
	results := r.read(b, cfg.Commands.ResultsTopic)
	const perIter = 500
	sent := 0
	b.ResetTimer()
	for i := range b.N {
		var msgs []*message.Message
		for j := range perIter {
			id := uuid.NewString()
			msgs = append(msgs, message.NewMessage(id, []byte(fmt.Sprintf(
				`{"type":"CreateSlots","id":%q,"data":{"date":"2030-01-%02d","startHour":%d,"count":1}}`, id, 1+i%28, j%24))))
		}
		r.sendRaw(b, msgs...)
		sent += perIter
		results.waitN(b, "outcomes", sent)
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "commands/s")
}
