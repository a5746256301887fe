// Package bench measures emitd from the outside: the real binary (`emitd
// serve`) runs on each broker setup shipped in configs/, and the benchmarks
// talk to it only the way services do, through cmd/emitd/internal/brokers
// (as `emitd send` and `emitd tail` do). They depend on nothing inside the
// daemon, so they keep measuring while its internals are rewritten.
//
// Everything is in the test files; `make bench` runs them and prints one
// table (cmd/benchtable). The benchmarks:
//
//   - BenchmarkThroughput/<broker>/emitd: N CreateSlots commands sent in
//     batches of 500; commands/s = N / (first send .. the last of the N
//     outcomes, N domain events and N analytics events to arrive).
//   - BenchmarkThroughput/<broker>/raw: the same broker through Watermill's
//     own publisher and subscriber for it, N messages of about 200 bytes;
//     msgs/s = N / (first publish .. last receive). The raw run follows its
//     emitd run, so both see the same machine conditions.
//   - BenchmarkLatency/embedded/rate=R: commands paced at R/s on the
//     embedded default; p50/p99 from send to domain event, the share answered
//     within a grace period, and the daemon's peak RSS (VmHWM).
//
// Knobs (environment): BENCH_COMMANDS (N, default 20000),
// BENCH_LATENCY_RATES (default 1000,5000), BENCH_LATENCY_DURATION (default
// 10s), BENCH_LATENCY_GRACE (default 5s). A broker that is not there (the
// machine's NATS or RabbitMQ, the npm test tools) is skipped, or fails the
// run when CI is set.
package bench
