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

.PHONY: all build test test-short lint fmt generate check-generated tools run load bench clean

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

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '^gen/')

lint: tools
	buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet $(PKGS)
	$(MAKE) --no-print-directory check-generated

build:
	@mkdir -p bin
	go build -o bin/ ./services/memory/cmd/memory ./services/orchestrator/cmd/orchestrator ./services/kit/cmd/devstack

test:
	go test -count=1 -timeout 9m $(PKGS)

test-short:
	go test -count=1 -short $(PKGS)

# Brings up PostgreSQL (a persistent cluster under .run/ unless DATABASE_URL
# is set), memory and orchestrator; Ctrl-C stops all of it.
run: build
	bin/devstack

clean:
	rm -rf bin .bin
