package kafka

import (
	"fmt"
	"testing"

	"github.com/Shopify/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The key partitioner agrees with Kafka's own (murmur2, as the Java client and
// franz-go use) for any key and partition count.
func TestPartitionerMatchesKafkaClients(t *testing.T) {
	ref := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	part := newMurmur2Partitioner("t")
	if !part.RequiresConsistency() {
		t.Fatal("a key partitioner must require consistency")
	}
	for i := range 5000 {
		full := fmt.Sprintf("slot-%d-%x-%d", i, i*7919, i*i)
		key := []byte(full[:i%len(full)])
		for _, n := range []int{1, 3, 4, 10, 64} {
			got, err := part.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(key)}, int32(n))
			if err != nil {
				t.Fatal(err)
			}
			if want := ref.Partition(&kgo.Record{Key: key}, n); int(got) != want {
				t.Fatalf("key %q, %d partitions: %d, Kafka clients say %d", key, n, got, want)
			}
		}
	}
}
