package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Shopify/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wsqs "github.com/ThreeDotsLabs/watermill-aws/sqs"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v2/pkg/kafka"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/kafka/kafkatest"
)

// rawPubSub is Watermill's own publisher and subscriber for one broker, on
// a topic of the run's own that exists before the first publish. Their
// settings are Watermill's defaults, except where a run would be wrong
// without a change (said at each).
type rawPubSub struct {
	pub   message.Publisher
	sub   message.Subscriber
	topic string
}

// rawPayloadSize is about the size of a command (the envelopes are bigger,
// about 1 KB; the commands and outcomes about 200 bytes).
const rawPayloadSize = 200

// rawMessages makes n messages plus a warm-up one (position 0); the UUID
// says which is which.
func rawMessages(run string, n int) ([]*message.Message, map[string]int) {
	msgs := make([]*message.Message, 0, n+1)
	index := make(map[string]int, n+1)
	for i := range n + 1 {
		id := fmt.Sprintf("%s-%d", run, i)
		head := fmt.Sprintf(`{"type":"BenchMessage","id":%q,"pad":"`, id)
		payload := head + strings.Repeat("x", max(0, rawPayloadSize-len(head)-2)) + `"}`
		msgs = append(msgs, message.NewMessage(id, []byte(payload)))
		index[id] = i
	}
	return msgs, index
}

// uuidKey: a raw message is known by its UUID.
func uuidKey(msg *message.Message) (string, string, error) { return msg.UUID, "", nil }

// ---- embedded: nats-server in this process, JetStream file store -----------

// rawEmbedded runs nats-server in this process with JetStream on a file
// store, as the daemon runs its embedded broker (adapters/natsjs/embedded.go),
// and talks to it with watermill-nats/v2.
func rawEmbedded(b *testing.B, run string) rawPubSub {
	b.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: "bench-embedded", Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: b.TempDir(), NoSigs: true, NoLog: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	go srv.Start()
	b.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		b.Fatal("in-process nats-server not ready")
	}
	return natsPubSub(b, srv.ClientURL(), "bench-raw-"+run)
}

// rawNATS is watermill-nats/v2 on the machine's NATS; the stream goes at
// the end of the run.
func rawNATS(b *testing.B, run string) rawPubSub {
	b.Helper()
	needServer(b, "NATS", machineNATSAddr)
	topic := "bench-raw-" + run
	b.Cleanup(func() {
		nc, err := nats.Connect(machineNATS)
		if err != nil {
			return
		}
		defer nc.Close()
		if js, err := nc.JetStream(); err == nil {
			_ = js.DeleteStream(topic) // Watermill names the stream after the topic
		}
	})
	return natsPubSub(b, machineNATS, topic)
}

// natsPubSub: JetStream on (Watermill's default), the stream created up front
// with Watermill's own SubscribeInitialize (AutoProvision would look the
// stream up on every publish), an ephemeral push consumer that acks each
// message synchronously (the defaults).
func natsPubSub(b *testing.B, url, topic string) rawPubSub {
	b.Helper()
	pub, err := wnats.NewPublisher(wnats.PublisherConfig{URL: url}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = pub.Close() })
	sub, err := wnats.NewSubscriber(wnats.SubscriberConfig{URL: url}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.SubscribeInitialize(topic); err != nil {
		b.Fatalf("create stream %s: %v", topic, err)
	}
	return rawPubSub{pub: pub, sub: sub, topic: topic}
}

// ---- Kafka: kfake in this process --------------------------------------------

// rawKafka is watermill-kafka/v2 (Sarama's sync producer, a consumer group)
// on a kfake cluster of its own. Changed from the defaults: the group reads
// from the oldest offset (a new group would otherwise skip what was
// published before it joined), and the topic is created up front with
// kfake's partition count.
func rawKafka(b *testing.B, run string) rawPubSub {
	b.Helper()
	brokers := kafkatest.StartCluster(b).ListenAddrs()
	topic := "bench-raw-" + run
	pub, err := wkafka.NewPublisher(wkafka.PublisherConfig{Brokers: brokers, Marshaler: wkafka.DefaultMarshaler{}}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = pub.Close() })
	sc := wkafka.DefaultSaramaSubscriberConfig()
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sub, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{
		Brokers: brokers, Unmarshaler: wkafka.DefaultMarshaler{}, ConsumerGroup: "bench-raw",
		OverwriteSaramaConfig:  sc,
		InitializeTopicDetails: &sarama.TopicDetail{NumPartitions: kafkatest.Partitions, ReplicationFactor: 1},
	}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.SubscribeInitialize(topic); err != nil {
		b.Fatalf("create topic %s: %v", topic, err)
	}
	return rawPubSub{pub: pub, sub: sub, topic: topic}
}

// ---- SQS: fauxqs ---------------------------------------------------------------

// rawSQS is watermill-aws/sqs on a fauxqs of its own, with its defaults
// (one SendMessage per message; one receive loop, one message per receive,
// a delete per ack). The queue is created up front.
func rawSQS(b *testing.B, run string) rawPubSub {
	b.Helper()
	awsCfg := awstest.AWSConfig(awstest.StartFauxqs(b))
	topic := "bench-raw-" + run
	pub, err := wsqs.NewPublisher(wsqs.PublisherConfig{AWSConfig: awsCfg}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = pub.Close() })
	sub, err := wsqs.NewSubscriber(wsqs.SubscriberConfig{AWSConfig: awsCfg}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.SubscribeInitializeWithContext(context.Background(), topic); err != nil {
		b.Fatalf("create queue %s: %v", topic, err)
	}
	return rawPubSub{pub: pub, sub: sub, topic: topic}
}

// ---- RabbitMQ -------------------------------------------------------------------

// rawAMQP is watermill-amqp/v3's durable pub/sub preset (a durable fanout
// exchange per topic, a durable queue bound to it, persistent messages,
// prefetch 1) on the machine's RabbitMQ. The queue is declared and bound up
// front: RabbitMQ drops what no queue is bound for. Exchange and queue go at
// the end of the run.
func rawAMQP(b *testing.B, run string) rawPubSub {
	b.Helper()
	needServer(b, "RabbitMQ", machineAMQPAddr)
	topic := "bench-raw-" + run
	cfg := wamqp.NewDurablePubSubConfig(machineAMQP, wamqp.GenerateQueueNameTopicNameWithSuffix("bench"))
	pub, err := wamqp.NewPublisher(cfg, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = pub.Close() })
	sub, err := wamqp.NewSubscriber(cfg, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn, err := amqp091.Dial(machineAMQP)
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(cfg.Queue.GenerateName(topic), false, false, false)
			_ = ch.ExchangeDelete(cfg.Exchange.GenerateName(topic), false, false)
			ch.Close()
		}
	})
	if err := sub.SubscribeInitialize(topic); err != nil {
		b.Fatalf("declare %s: %v", topic, err)
	}
	return rawPubSub{pub: pub, sub: sub, topic: topic}
}
