# emitd: the daemon and its tests. `make help` lists the targets.
GO        ?= go
BIN       ?= bin/emitd
CONFIG    ?=
PKGS      ?= ./...
TEST_TOOLS_STAMP := test-tools/node_modules/.installed

.PHONY: help run build test test-tools lint fuzz bench bench-parts clean

help: ## list the targets and the benchmark knobs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
	@echo; echo "make bench knobs (make bench BENCH_COMMANDS=2000 BENCH_COUNT=2; CI=1 fails instead of skipping a missing broker):"
	@grep -E '^BENCH[A-Z_]* +\?=.*## ' $(MAKEFILE_LIST) | sed -E 's/ +\?= *([^#]*)## /\t\1\t/'

run: build ## run the daemon (embedded default, or CONFIG=configs/kafka.yaml ...)
	$(BIN) serve $(if $(CONFIG),--config $(CONFIG))

build: ## build bin/emitd
	$(GO) build -o $(BIN) ./cmd/emitd

test: test-tools ## every test, with the race detector (needs NATS on :4222, RabbitMQ on :5672 and PostgreSQL on :5432)
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

# fauxqs (SNS/SQS emulator) on a Node 22 binary, both from npm, pinned by
# test-tools/package-lock.json. Reinstalled when the lock file changes.
test-tools: $(TEST_TOOLS_STAMP) ## install the test brokers that come from npm
$(TEST_TOOLS_STAMP): test-tools/package-lock.json
	cd test-tools && npm ci --no-audit --no-fund
	touch $@

lint: ## gofmt, go vet, and go.mod/go.sum exactly as go mod tidy leaves them
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy (it would make the changes above)"; exit 1; }

# Fuzz targets, as package:Target; each runs for FUZZTIME. go test -fuzz takes
# one target at a time, hence the loop. A failing input is saved under the
# package's testdata/fuzz/<Target>/ and replayed by every later go test.
FUZZTIME     ?= 5s
FUZZ_TARGETS ?= ./domain:FuzzParseCommand ./router:FuzzDeadLetterRoundTrip
fuzz: ## run every fuzz target for FUZZTIME each (default 5s)
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# Benchmarks. `make bench` runs cmd/emitd/internal/bench: the real binary on
# every broker setup of configs/, raw Watermill on the same broker right after
# it, and the latency of paced commands on the embedded default. It runs the
# package BENCH_COUNT times, one run of each benchmark per round (go test
# -count would repeat each benchmark back to back, and emitd's and raw
# Watermill's runs must interleave to see the same machine), appends
# everything to bench.out, and prints one table of medians (cmd/benchtable;
# benchstat reads bench.out too). Each round prints its results as it ends.
BENCH_COUNT            ?= 5## rounds: runs of every benchmark
BENCH_COMMANDS         ?= 20000## commands (and raw messages) per throughput run
BENCH_LATENCY_RATES    ?= 1000,5000## offered commands/s of the latency runs
BENCH_LATENCY_DURATION ?= 10s## how long each latency run sends
BENCH_LATENCY_GRACE    ?= 5s## how long answers may take after the last send
BENCH                  ?= .## go test -bench pattern, e.g. 'Throughput/(embedded|kafka)'
BENCH_ENV = BENCH_COMMANDS=$(BENCH_COMMANDS) BENCH_LATENCY_RATES=$(BENCH_LATENCY_RATES) \
	BENCH_LATENCY_DURATION=$(BENCH_LATENCY_DURATION) BENCH_LATENCY_GRACE=$(BENCH_LATENCY_GRACE)

bench: test-tools ## emitd vs raw Watermill on every broker, latency, peak RSS: one table of medians (knobs below)
	@rm -f bench.out; rc=0; began=$$(date +%s); \
	for round in $$(seq $(BENCH_COUNT)); do \
		from=$$(( $$(cat bench.out 2>/dev/null | wc -l) + 1 )); \
		echo "== round $$round of $(BENCH_COUNT) (raw output: bench.out)"; \
		$(BENCH_ENV) $(GO) test -v -run '^$$' -bench '$(BENCH)' -benchtime 1x -count 1 -timeout 60m \
			./cmd/emitd/internal/bench >> bench.out 2>&1 || rc=1; \
		tail -n +$$from bench.out | grep -E '^Benchmark[^ ]*-[0-9]+[[:space:]]|^--- (SKIP|FAIL)|^FAIL|^panic' || true; \
	done; \
	echo "== $(BENCH_COUNT) rounds in $$(( ($$(date +%s) - began) / 60 )) min"; echo; \
	$(GO) run ./cmd/benchtable $(BENCH_RATIOS) bench.out; exit $$rc

# The PostgreSQL store beside SQLite on the same broker (the machine's NATS),
# and three instances on PostgreSQL beside one.
BENCH_RATIOS = -ratio Throughput/postgres-1/emitd:Throughput/nats/emitd \
	-ratio Throughput/postgres-3/emitd:Throughput/postgres-1/emitd

bench-parts: ## the component benchmarks (relay, in-process daemon, each adapter's publish), BENCH_COUNT runs each
	@rm -f bench-parts.out; rc=0; \
	$(GO) test -run '^$$' -bench . -benchtime 10x -count $(BENCH_COUNT) ./publisher ./cmd/emitd/internal/daemon > bench-parts.out 2>&1 || rc=1; \
	$(GO) test -run '^$$' -bench . -benchtime 1s -count $(BENCH_COUNT) ./adapters/... >> bench-parts.out 2>&1 || rc=1; \
	$(GO) run ./cmd/benchtable bench-parts.out; exit $$rc

clean: ## remove build output and the default data directory
	rm -rf bin data bench.out bench-parts.out
