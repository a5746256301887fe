package kafka

import (
	"context"
	"time"

	"github.com/Shopify/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v2/pkg/kafka"
)

// Record is where a consumed message sat in Kafka.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Timestamp time.Time
}

type recordKey struct{}

func withRecord(ctx context.Context, rec *sarama.ConsumerMessage) context.Context {
	return context.WithValue(ctx, recordKey{}, Record{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
		Key: rec.Key, Timestamp: rec.Timestamp})
}

// RecordFromCtx returns the record a consumed message came from, from any
// subscriber of this package (a reader without group is watermill-kafka's,
// which keeps the same facts under its own keys).
func RecordFromCtx(ctx context.Context) (Record, bool) {
	if r, ok := ctx.Value(recordKey{}).(Record); ok {
		return r, true
	}
	p, ok := wkafka.MessagePartitionFromCtx(ctx)
	if !ok {
		return Record{}, false
	}
	r := Record{Partition: p}
	r.Offset, _ = wkafka.MessagePartitionOffsetFromCtx(ctx)
	r.Key, _ = wkafka.MessageKeyFromCtx(ctx)
	r.Timestamp, _ = wkafka.MessageTimestampFromCtx(ctx)
	return r, true
}
