package publisher_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/emitd/emitd/adapters/natsjs"
)

// BenchmarkRelay measures envelopes per second from the SQLite outbox to a
// bus, by relay batch size: batch=1 pays one outbox read and one delete per
// envelope, the default (256) pays them once per batch. On the in-memory
// bus the store is the whole cost; on the embedded NATS bus each publish is
// a JetStream round trip as well.
func BenchmarkRelay(b *testing.B) {
	buses := map[string]func(b *testing.B) message.Publisher{
		"bus=memory": func(b *testing.B) message.Publisher {
			return gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
		},
		"bus=embedded-nats": func(b *testing.B) message.Publisher {
			srv, url, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{Dir: filepath.Join(b.TempDir(), "nats"), Port: -1})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
			pub, err := natsjs.NewPublisher(natsjs.Config{URL: url, Topics: []string{"reservation", "analytics"}})
			if err != nil {
				b.Fatal(err)
			}
			return pub
		},
	}
	for _, bus := range []string{"bus=memory", "bus=embedded-nats"} {
		for _, batch := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/batch=%d", bus, batch), func(b *testing.B) {
				pub := buses[bus](b)
				defer pub.Close()
				store := openStore(b)
				const commands = 500 // 1000 envelopes per iteration
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					commitSlots(b, store, commands)
					r := eventRelay(store, pub)
					r.BatchSize = batch
					b.StartTimer()
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan error, 1)
					go func() { done <- r.Run(ctx, time.Minute) }()
					for r.Published() < 2*commands {
						time.Sleep(100 * time.Microsecond)
					}
					cancel()
					if err := <-done; err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(2*commands*b.N)/b.Elapsed().Seconds(), "envelopes/s")
			})
		}
	}
}
