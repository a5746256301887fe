package kafka_test

import (
	"bytes"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/emitd/emitd/adapters/contract"
	"github.com/emitd/emitd/adapters/kafka"
	"github.com/emitd/emitd/adapters/kafka/kafkatest"
	"github.com/emitd/emitd/adapters/tlsconfig/tlstest"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// The shared adapter contract, against one kfake cluster for the whole run.
func TestContract(t *testing.T) {
	brokers := kafkatest.Start(t)
	runContract(t, "kafka-kfake", kafka.Config{Brokers: brokers})
}

// The same contract once over TLS and SCRAM-SHA-512: what the security
// settings change (the connection) must change nothing a user sees.
func TestContractTLSAndSCRAM(t *testing.T) {
	pki := tlstest.New(t)
	brokers := secureCluster(t, pki)
	u := users[kafka.MechanismSCRAMSHA512]
	runContract(t, "kafka-kfake-tls-scram", secureConfig(brokers, pki, kafka.MechanismSCRAMSHA512, u.pass),
		kgo.DialTLSConfig(pki.ClientConfig()),
		kgo.SASL(scram.Auth{User: u.user, Pass: u.pass}.AsSha512Mechanism()))
}

// runContract runs the shared adapter contract with base (brokers and
// security); kopts are the same security for the franz-go clients that
// create topics and read records natively.
func runContract(t *testing.T, name string, base kafka.Config, kopts ...kgo.Opt) {
	brokers := base.Brokers
	withGroup := func(group string) kafka.Config { c := base; c.ConsumerGroup = group; return c }
	contract.Run(t, contract.Factory{
		Name: name,
		NewPublisher: func(t *testing.T) message.Publisher {
			p, err := kafka.NewPublisher(base, logger)
			if err != nil {
				t.Fatalf("[%s] NewPublisher: %v", name, err)
			}
			t.Cleanup(func() { _ = p.Close() })
			return p
		},
		NewSubscriber: func(t *testing.T, group string) message.Subscriber {
			s, err := kafka.NewSubscriber(withGroup(group), logger)
			if err != nil {
				t.Fatalf("[%s] NewSubscriber(%q): %v", name, group, err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		NewTopic: func(t *testing.T) string {
			topic := "emitd-test." + watermill.NewShortUUID()
			createTopic(t, brokers, topic, kopts...)
			return topic
		},
	}, contract.Features{
		PerKeyOrder:    true,  // key = slot id, one partition per slot
		GlobalOrder:    false, // 4 partitions
		ConsumerGroups: true,
		Persistent:     true,
		Redelivery:     true,
		ExactlyOnce:    false, // at least once: an ack racing a close or rebalance is replayed
		InFlight:       20,
		NativeCheck: func(t *testing.T, topic string, sent []domain.Envelope) {
			nativeCheck(t, name, brokers, topic, sent, kopts...)
		},
		CloudEvents: &contract.CloudEventsBinding{
			// the Kafka binding's, as the spec writes it
			Prefix: "ce_", Read: func(t *testing.T, topic string, n int) []contract.Native {
				var out []contract.Native
				for _, r := range readRecords(t, brokers, topic, n, kopts...) {
					h := map[string]string{}
					for _, hd := range r.Headers {
						h[hd.Key] = string(hd.Value)
					}
					out = append(out, contract.Native{Key: string(r.Key), Headers: h, ContentType: h["content-type"], Body: r.Value})
				}
				return out
			}},
	})
}

// nativeCheck reads the topic with franz-go, no Watermill: one record per
// envelope, key = slot id, value = the entry JSON, metadata and UUID as
// headers; each slot's records in publish order.
func nativeCheck(t *testing.T, name string, brokers []string, topic string, sent []domain.Envelope, kopts ...kgo.Opt) {
	t.Helper()
	recs := readRecords(t, brokers, topic, len(sent), kopts...)
	byID := map[string]int{}
	for i, env := range sent {
		byID[env.ID] = i
	}
	lastOfSlot := map[string]int{}
	for _, r := range recs {
		id := headerOf(r, kafka.UUIDHeader)
		i, ok := byID[id]
		if !ok {
			t.Fatalf("[%s] record with UUID header %q: not one of the sent envelopes", name, id)
		}
		env := sent[i]
		if string(r.Key) != env.SlotID {
			t.Errorf("[%s] envelope %d: key %q, want the slot id %q", name, i, r.Key, env.SlotID)
		}
		if want := contract.EntryJSON(t, env); !bytes.Equal(r.Value, want) {
			t.Errorf("[%s] envelope %d: value\n got %s\nwant %s", name, i, r.Value, want)
		}
		for k, v := range contract.HeaderKeys(env) {
			if got := headerOf(r, k); got != v {
				t.Errorf("[%s] envelope %d: header %q = %q, want %q", name, i, k, got, v)
			}
		}
		if env.CorrelationID == "" {
			for _, h := range r.Headers {
				if h.Key == publisher.MetaCorrelationID {
					t.Errorf("[%s] envelope %d: header %q present without a correlation id", name, i, h.Key)
				}
			}
		}
		if last, ok := lastOfSlot[env.SlotID]; ok && last > i {
			t.Errorf("[%s] slot %s: envelope %d after %d", name, env.SlotID, i, last)
		}
		lastOfSlot[env.SlotID] = i
	}
}
