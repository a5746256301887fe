# emitd: the daemon and its tests. `make help` lists the targets.
GO        ?= go
BIN       ?= bin/emitd
CONFIG    ?=
PKGS      ?= ./...
TEST_TOOLS_STAMP := test-tools/node_modules/.installed

.PHONY: help run build test test-tools lint fuzz bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

run: build ## run the daemon (embedded default, or CONFIG=configs/kafka.yaml ...)
	$(BIN) serve $(if $(CONFIG),--config $(CONFIG))

build: ## build bin/emitd
	$(GO) build -o $(BIN) ./cmd/emitd

test: test-tools ## every test, with the race detector (needs NATS on :4222 and RabbitMQ on :5672)
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

# Benchmarks run BENCH_COUNT times each; benchstat prints the median of each
# metric with its spread, all measured side by side in one run.
BENCH_COUNT ?= 6
BENCHSTAT   ?= $(GO) run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
bench: test-tools ## benchmarks (relay, daemon, every adapter's publish) as a table of medians
	$(GO) test -run '^$$' -bench . -benchtime 10x -count $(BENCH_COUNT) ./publisher ./cmd/emitd/internal/daemon > bench.out
	$(GO) test -run '^$$' -bench . -benchtime 1s -count $(BENCH_COUNT) ./adapters/... >> bench.out
	$(BENCHSTAT) bench.out

clean: ## remove build output and the default data directory
	rm -rf bin data bench.out
