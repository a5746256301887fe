package kafka

import "github.com/Shopify/sarama"

// newMurmur2Partitioner picks a key's partition the way Kafka's Java client
// (and franz-go's default) does: toPositive(murmur2(key)) % partitions.
// Sarama's default hashes with FNV-1a, which would put a slot on a different
// partition than any other client keyed by the same slot id.
func newMurmur2Partitioner(topic string) sarama.Partitioner {
	return murmur2Partitioner{random: sarama.NewRandomPartitioner(topic)}
}

type murmur2Partitioner struct{ random sarama.Partitioner }

func (p murmur2Partitioner) Partition(msg *sarama.ProducerMessage, n int32) (int32, error) {
	if msg.Key == nil {
		return p.random.Partition(msg, n)
	}
	key, err := msg.Key.Encode()
	if err != nil {
		return -1, err
	}
	return int32(murmur2(key)&0x7fffffff) % n, nil
}

func (murmur2Partitioner) RequiresConsistency() bool { return true }

// murmur2 is Kafka's variant of MurmurHash2 (seed 0x9747b28c), as in
// org.apache.kafka.common.utils.Utils.murmur2.
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
