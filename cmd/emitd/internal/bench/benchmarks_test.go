package bench

// The benchmarks, in the order they run and their rows appear in the table
// (go test runs them in the order of the files, then of the source); how
// each run goes is in throughput_test.go and latency_test.go.

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkThroughput measures, on each broker, emitd (the real binary, as
// shipped in configs/) and, right after it, raw Watermill on the same
// broker. Run with -benchtime 1x: one iteration is one whole run. `make
// bench` runs the package several times rather than using -count, which
// would repeat each sub-benchmark back to back instead of interleaving
// emitd and raw runs.
func BenchmarkThroughput(b *testing.B) {
	for _, t := range targets() {
		b.Run(t.name, func(b *testing.B) {
			b.Run("emitd", func(b *testing.B) {
				report(b, "commands/s", func() (int, time.Duration) { return emitdThroughput(b, &t) })
			})
			if t.raw != nil {
				b.Run("raw", func(b *testing.B) {
					report(b, "msgs/s", func() (int, time.Duration) { return rawThroughput(b, &t) })
				})
			}
		})
	}
}

// BenchmarkLatency offers commands at a steady rate to emitd on the embedded
// default and measures, per command, the time from its send to the arrival
// of its domain event; how many commands were answered (outcome received)
// within a grace period after the last send; and the daemon's peak RSS.
//
// The commands follow a fixed schedule, one every 1/rate, each its own
// Publish, handed to a pool of senders so that a slow publish does not delay
// the next command. The schedule sleeps until the next command is due, and
// Go's timers wake at about 1 ms granularity here, so at rates above
// 1,000/s the commands due within one millisecond leave together (about 5
// at 5,000/s): spinning for finer pacing would take one of the machine's two
// cores from the daemon. sent-commands/s is the rate achieved.
func BenchmarkLatency(b *testing.B) {
	rates := envInts(b, "BENCH_LATENCY_RATES", []int{1000, 5000})
	duration := envDuration(b, "BENCH_LATENCY_DURATION", 10*time.Second)
	grace := envDuration(b, "BENCH_LATENCY_GRACE", 5*time.Second)
	b.Run("embedded", func(b *testing.B) {
		for _, rate := range rates {
			b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
				var all latencyResult
				for range b.N {
					all.add(latencyRun(b, rate, duration, grace))
				}
				all.report(b)
			})
		}
	})
}
