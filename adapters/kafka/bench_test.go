package kafka_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/kafka"
	"github.com/emitd/emitd/adapters/kafka/kafkatest"
)

// BenchmarkPublish measures envelope messages per second through the
// adapter into kfake (one acknowledged produce per message), from one
// goroutine and from 16. One kfake cluster per run, closed after it.
func BenchmarkPublish(b *testing.B) {
	for _, goroutines := range []int{1, 16} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			brokers := kafkatest.Start(b)
			pub := newPublisher(b, kafka.Config{Brokers: brokers})
			const topic = "bus-bench"
			env := envelope("bench", "slot", 0)
			warm := toMessage(b, env)
			if err := pub.Publish(topic, warm); err != nil { // creates the topic
				b.Fatal(err)
			}
			payload := warm.Payload
			b.SetBytes(int64(len(payload)))

			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, goroutines)
			b.ResetTimer()
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						msg := message.NewMessage(fmt.Sprintf("%d-%d", g, i), payload)
						msg.Metadata = message.Metadata{
							"source": env.Source, "detail-type": env.DetailType,
							"event-id": msg.UUID, "slot-id": fmt.Sprintf("slot-%d", i%64),
						}
						if err := pub.Publish(topic, msg); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
