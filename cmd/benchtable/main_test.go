package main

import (
	"strings"
	"testing"
)

// Output of two `go test -v -bench` runs of the bench package (one
// broker skipped), and one run of another package.
const sample = `goos: linux
goarch: amd64
pkg: github.com/emitd/emitd/cmd/emitd/internal/bench
cpu: AMD EPYC
BenchmarkThroughput/embedded/emitd
    throughput_test.go:33: embedded: 2000 commands sent in 507ms; load average: 1.50 0.90 0.40
BenchmarkThroughput/embedded/emitd-2   	       1	      1000 commands/s	     20000 sent-commands/s
BenchmarkThroughput/embedded/raw-2     	       1	     10000 msgs/s
BenchmarkThroughput/amqp/emitd
    main_test.go:116: RabbitMQ is not running on 127.0.0.1:5672 (dial tcp 127.0.0.1:5672: connect: connection refused)
--- SKIP: BenchmarkThroughput/amqp/emitd
BenchmarkLatency/embedded/rate=1000-2  	       1	         2.5 p50-ms	        40.0 p99-ms	       100.0 answered-%
PASS
ok  	github.com/emitd/emitd/cmd/emitd/internal/bench	40.1s
goos: linux
goarch: amd64
pkg: github.com/emitd/emitd/cmd/emitd/internal/bench
cpu: AMD EPYC
BenchmarkThroughput/embedded/emitd-2   	       1	      1200 commands/s	     21000 sent-commands/s
--- BENCH: BenchmarkThroughput/embedded/emitd-2
    throughput_test.go:33: embedded: 2000 commands sent in 507ms; load average: 3.50 0.90 0.40
BenchmarkThroughput/embedded/raw-2     	       1	     15000 msgs/s
BenchmarkThroughput/amqp/emitd
    main_test.go:116: RabbitMQ is not running on 127.0.0.1:5672 (dial tcp 127.0.0.1:5672: connect: connection refused)
--- SKIP: BenchmarkThroughput/amqp/emitd
BenchmarkLatency/embedded/rate=1000-2  	       1	         3.5 p50-ms	        60.0 p99-ms	        99.0 answered-%
ok  	github.com/emitd/emitd/cmd/emitd/internal/bench	41.0s
pkg: github.com/emitd/emitd/adapters/kafka
BenchmarkPublish/goroutines=1-2         	   12925	     85780 ns/op	   2.81 MB/s	     11658 msgs/s
`

func TestTable(t *testing.T) {
	tb, err := parse([]input{{"sample", []byte(sample)}})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := tb.write(&out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		// Paired: emitd's median (1000, 1200 -> 1,100) beside raw's (12,500),
		// the ratio the median of 1000/10000 and 1200/15000.
		"| bench Throughput/embedded | commands/s | 1,100 | ±9% | 2 | 12,500 msgs/s ±20% | 0.0900 ±11% |",
		"| bench Throughput/embedded | sent-commands/s | 20,500 | ±2% | 2 |  |  |",
		"| bench Latency/embedded/rate=1000 | p50-ms | 3.00 | ±17% | 2 |  |  |",
		"| bench Latency/embedded/rate=1000 | answered-% | 99.5 | ±0.5% | 2 |  |  |",
		// Another package: its own metrics, without ns/op; MB/s as reported.
		"| kafka Publish/goroutines=1 | MB/s | 2.81 | – | 1 |  |  |",
		"| kafka Publish/goroutines=1 | msgs/s | 11,700 | – | 1 |  |  |",
		"- skipped BenchmarkThroughput/amqp/emitd: RabbitMQ is not running on 127.0.0.1:5672",
		"load average) as the runs ended: median 2.5, from 1.5 to 3.5.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q\n%s", want, got)
		}
	}
	if strings.Contains(got, "ns/op") || strings.Contains(got, "Throughput/embedded/raw") {
		t.Errorf("table shows ns/op or the raw run on a row of its own:\n%s", got)
	}
	if strings.Count(got, "skipped") != 1 {
		t.Errorf("the skip of every run is listed, want it once:\n%s", got)
	}
}

// Without X/emitd and X/raw pairs, the raw Watermill columns are left out.
func TestTableWithoutPairs(t *testing.T) {
	tb, err := parse([]input{{"sample", []byte("pkg: example.com/p\nBenchmarkRelay/batch=1-2 \t 10 \t 275396506 ns/op \t 3631 envelopes/s\n")}})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := tb.write(&out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); strings.Contains(got, "raw Watermill") || !strings.Contains(got, "| Relay/batch=1 | envelopes/s | 3,630 | – | 1 |\n") ||
		!strings.Contains(got, "Medians of 1 run of each") {
		t.Errorf("table:\n%s", got)
	}
}

func TestNumber(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 14210: "14,200", 1482: "1,480", 127.4: "127", 2.416: "2.42", 0.104: "0.104",
		1234567: "1,230,000", 999.6: "1,000", -5000: "-5,000", 100: "100",
	} {
		if got := number(v); got != want {
			t.Errorf("number(%v) = %q, want %q", v, got, want)
		}
	}
}

// -ratio puts one benchmark over another, run by run; a pair one of whose
// benchmarks did not run is left out.
func TestRatios(t *testing.T) {
	tb, err := parse([]input{{"sample", []byte(sample)}})
	if err != nil {
		t.Fatal(err)
	}
	tb.ratios = [][2]string{
		{"Throughput/embedded/emitd", "Throughput/embedded/raw"},
		{"Throughput/amqp/emitd", "Throughput/embedded/emitd"},
	}
	var out strings.Builder
	if err := tb.write(&out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, "| Throughput/embedded/emitd | Throughput/embedded/raw | 0.0900 ±11% |") {
		t.Errorf("no ratio row in:\n%s", got)
	}
	if strings.Contains(got, "| Throughput/amqp/emitd |") {
		t.Errorf("a ratio of a skipped benchmark:\n%s", got)
	}
}
