# Brain — build, test and run. `make run` and `make test` are the two commands
# a newcomer needs; everything else is for contributors.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

ROOT    := $(abspath .)
TOOLBIN := $(ROOT)/.bin
export PATH := $(TOOLBIN):$(PATH)
export GOFLAGS := -buildvcs=false

MODULES := gen services/kit services/memory services/orchestrator services/deploy services/e2e
PKGS    := $(addprefix ./,$(addsuffix /...,$(MODULES)))
TOOLS   := buf protoc-gen-go protoc-gen-go-grpc protoc-gen-grpc-gateway protoc-gen-openapiv2
TOOL_PKGS := github.com/bufbuild/buf/cmd/buf \
	google.golang.org/protobuf/cmd/protoc-gen-go \
	google.golang.org/grpc/cmd/protoc-gen-go-grpc \
	github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
	github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2

.PHONY: all build test test-short lint fmt generate check-generated breaking tools run load bench clean

all: lint build test

# Code generators are pinned in proto/tools/go.mod (kept out of go.work so
# buf's own dependencies never change the services' versions) and built once
# into .bin/.
$(TOOLBIN)/.stamp: proto/tools/go.mod proto/tools/go.sum
	@mkdir -p $(TOOLBIN)
	@echo "building pinned tools into .bin/ (first use only)"
	cd proto/tools && GOWORK=off go build -o $(TOOLBIN)/ $(TOOL_PKGS)
	@touch $@

tools: $(TOOLBIN)/.stamp

generate: tools
	rm -rf gen/brain gen/openapi/*.json
	buf generate
	cd gen && go build ./...

# Fails when gen/ does not match the protos.
check-generated: generate
	@git diff --exit-code --stat -- gen/ || { echo "gen/ is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- gen/)" || { git status --porcelain -- gen/; echo "gen/ has untracked generated files"; exit 1; }

# Fails when the protos break compatibility (buf's FILE rules) with a git
# ref: main by default, so a branch cannot rename or renumber what clients
# already use.
BREAKING_AGAINST ?= .git\#branch=main
breaking: tools
	@if [ "$(BREAKING_AGAINST)" = '.git#branch=main' ] && ! git rev-parse --verify -q main >/dev/null; then \
	  echo "breaking: no local branch main to compare with; skipped"; \
	else buf breaking --against '$(BREAKING_AGAINST)'; fi

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '^gen/')

lint: tools
	buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet $(PKGS)
	$(MAKE) --no-print-directory breaking
	$(MAKE) --no-print-directory check-generated

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build:
	@mkdir -p bin
	go build -ldflags "-X github.com/brainhq/brain/services/kit/cli.buildVersion=$(VERSION)" \
	  -o bin/ ./services/memory/cmd/memory ./services/orchestrator/cmd/orchestrator ./services/kit/cmd/devstack

# Unit and integration tests run with the race detector. The end-to-end,
# fault and bad-input suites run after the rest, alone, so
# their timing bounds (readiness within 2 s, answers within deadlines) are not
# measured on a CPU shared with other packages' PostgreSQL clusters.
test:
	go test -race -count=1 -timeout 6m $(filter-out ./services/e2e/...,$(PKGS))
	go test -count=1 -timeout 4m ./services/e2e/...

test-short:
	go test -count=1 -short $(PKGS)

# Brings up PostgreSQL (a persistent cluster under .run/ unless DATABASE_URL
# or DATABASE_URL_FILE is set), memory and orchestrator; Ctrl-C stops all of it.
run: build
	bin/devstack

# Drives a stack of its own (PostgreSQL under .run/load on port 55442, memory
# 127.0.0.1:19091/18081, orchestrator 127.0.0.1:19090/18080, no demo seed;
# the 100k-episode corpus is loaded once and kept there) with brainload:
# raw SQL, gRPC, JSON, Orchestrate and mixed phases, start-up, breaker-open,
# outage and silent-drop measurements; prints the tables (also written to
# .run/load/report.md) and stops the stack, on failure and Ctrl-C too.
# Extra brainload flags: make load LOAD_FLAGS='--duration 30s'.
load: build
	@dir=.run/load; mkdir -p $$dir; \
	go build -o bin/brainload ./services/e2e/cmd/brainload; \
	echo "load: starting the stack (log $$dir/devstack.log)"; \
	env -u DATABASE_URL -u DATABASE_URL_FILE BRAIN_SEED=false bin/devstack --run-dir $$dir --pg-port 55442 \
	  --memory-grpc 127.0.0.1:19091 --memory-http 127.0.0.1:18081 \
	  --orchestrator-grpc 127.0.0.1:19090 --orchestrator-http 127.0.0.1:18080 >$$dir/devstack.log 2>&1 & \
	stack=$$!; \
	trap 'kill -TERM $$stack 2>/dev/null; wait $$stack 2>/dev/null || true; echo "load: stack stopped"' EXIT; \
	trap 'exit 130' INT TERM; \
	for i in $$(seq 600); do \
	  if bin/orchestrator health --addr 127.0.0.1:19090 --service memory/postgres --timeout 1s >/dev/null 2>&1; then break; fi; \
	  if ! kill -0 $$stack 2>/dev/null; then cat $$dir/devstack.log; echo "load: the stack did not start"; exit 1; fi; \
	  sleep 0.2; \
	done; \
	bin/orchestrator health --addr 127.0.0.1:19090 --service memory/postgres --timeout 1s >/dev/null || \
	  { cat $$dir/devstack.log; echo "load: the stack is not healthy after 2 minutes"; exit 1; }; \
	POSTGRES_HOST=127.0.0.1 POSTGRES_PORT=55442 POSTGRES_USER=brain POSTGRES_DB=brain POSTGRES_SSLMODE=disable \
	POSTGRES_PASSWORD_FILE=$$dir/postgres/pwfile \
	bin/brainload --memory-grpc 127.0.0.1:19091 --memory-http 127.0.0.1:18081 \
	  --orchestrator-grpc 127.0.0.1:19090 --http 127.0.0.1:18080 \
	  --load-corpus 100000 --namespaces 20 --concurrency 8 --duration 10s \
	  --memory-bin bin/memory --orchestrator-bin bin/orchestrator \
	  --log-dir $$dir/brainload --out $$dir/report.md $(LOAD_FLAGS)

# Recall on the 100k-episode corpus, raw SQL through pgx, in a PostgreSQL of
# its own (kept in .run/bench so the corpus loads once), then the
# orchestrator's in-process benchmarks (orchestration cost beyond recall,
# time to the first LAB result).
bench:
	go run ./services/memory/cmd/memorybench --pgtest --pgtest-dir .run/bench --load
	go test -run '^$$' -bench . -count 1 ./services/orchestrator/api

clean:
	rm -rf bin .bin
