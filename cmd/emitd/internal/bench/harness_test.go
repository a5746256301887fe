package bench

// Quick tests of the harness itself (they run in `make test`; nothing here
// starts a broker or builds the binary).

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/sns"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
)

// Every target's configuration still derives from its shipped file: a
// change to configs/ that the benchmark cannot follow fails here, not after
// minutes of `make bench`.
func TestDerivedConfigs(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			for _, kv := range tg.exampleEnv {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			shipped, err := configs.Load(configsDir + "/" + tg.file)
			if err != nil {
				t.Fatal(err)
			}
			cfg, _, err := deriveConfig(&tg, "r1", t.TempDir(), tg.example)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Commands.Topic != shipped.Commands.Topic+"-r1" || cfg.Events.AnalyticsBus != shipped.Events.AnalyticsBus+"-r1" {
				t.Errorf("names %q, %q: want the shipped ones with the run id", cfg.Commands.Topic, cfg.Events.AnalyticsBus)
			}
			// What the run does not change stays as shipped.
			if cfg.Commands.Broker != shipped.Commands.Broker || cfg.Router.HandlerTimeout != shipped.Router.HandlerTimeout ||
				cfg.Relay != shipped.Relay || *cfg.Router.Retry.MaxRetries != *shipped.Router.Retry.MaxRetries {
				t.Errorf("derived configuration differs from configs/%s beyond names and addresses", tg.file)
			}
			if tg.name == "sqs" && (cfg.Events.Broker != sqs.BrokerName || sns.SectionOf(cfg) != nil) {
				t.Errorf("sqs: events on %s: want SQS queues", cfg.Events.Broker)
			}
		})
	}
}

// The benchmark's commands are valid, distinct slots, carrying the
// correlation id the readers match on.
func TestCommands(t *testing.T) {
	c := newCommands("r1", 50)
	if len(c.msgs) != 51 || len(c.index) != 51 {
		t.Fatalf("%d messages, %d index entries; want 51", len(c.msgs), len(c.index))
	}
	slots := map[string]bool{}
	for i, msg := range c.msgs {
		cmd, err := domain.ParseCommand(msg.Payload)
		if err != nil {
			t.Fatalf("command %d: %v\n%s", i, err, msg.Payload)
		}
		if cmd.ID != msg.UUID || c.index[cmd.CorrelationID] != i || msg.Metadata.Get(correlationKey) != cmd.CorrelationID {
			t.Errorf("command %d: id %s (message %s), correlation %s", i, cmd.ID, msg.UUID, cmd.CorrelationID)
		}
		var d struct {
			Data struct {
				Date      string
				StartHour int
			}
		}
		_ = json.Unmarshal(msg.Payload, &d)
		slot := fmt.Sprintf("%sT%02d", d.Data.Date, d.Data.StartHour)
		if slots[slot] {
			t.Errorf("command %d: slot %s twice", i, slot)
		}
		slots[slot] = true
	}
}

func TestKeys(t *testing.T) {
	out := message.NewMessage("m", []byte(`{"commandId":"c","correlationId":"k","type":"CreateSlots","status":"accepted","eventIds":["a","b"]}`))
	if k, problem, err := outcomeKey(out); k != "k" || problem != "" || err != nil {
		t.Errorf("outcome: %q %q %v", k, problem, err)
	}
	rej := message.NewMessage("m", []byte(`{"commandId":"c","correlationId":"k","status":"rejected","reason":"no"}`))
	if _, problem, _ := outcomeKey(rej); !strings.Contains(problem, "rejected (no)") {
		t.Errorf("rejected outcome: problem %q", problem)
	}
	ev := message.NewMessage("m", []byte(`{"EventBusName":"reservation","Detail":"{\"metadata\":{\"id\":\"x\",\"correlationId\":\"k\"},\"data\":{}}"}`))
	if k, _, err := eventKey(ev); k != "k" || err != nil {
		t.Errorf("event: %q %v", k, err)
	}
	if _, _, err := eventKey(message.NewMessage("m", []byte("nope"))); err == nil {
		t.Error("event key of a non-entry: no error")
	}
}

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 100; i++ {
		v = append(v, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0, 1}} {
		if got := percentile(v, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(v[:1], 99); got != 1 {
		t.Errorf("p99 of one value = %v", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
}

func TestParseVmHWM(t *testing.T) {
	got, err := parseVmHWM([]byte("Name:\temitd\nVmPeak:\t 2000 kB\nVmHWM:\t   123456 kB\nVmRSS:\t 100 kB\n"))
	if err != nil || got != 123456*1024 {
		t.Errorf("parseVmHWM = %d, %v", got, err)
	}
	if _, err := parseVmHWM([]byte("Name:\temitd\n")); err == nil {
		t.Error("no VmHWM line: no error")
	}
}
