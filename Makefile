# rootfsctl: make build | test | bench | lint | demo | schema | fuzz
GO      ?= go
BIN     ?= bin/rootfsctl
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# the commit's date, not the clock's: the same commit builds the same binary
DATE    ?= $(shell git log -1 --format=%cI 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

.PHONY: all build test bench lint demo demo-hello schema fuzz clean e2e

all: lint test build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/rootfsctl

# The README's test command. Race detector on; every package.
test:
	$(GO) test -race -count=1 ./...

# Figures, never pass/fail: plan load+validate+graph for 100/1,000/10,000
# steps, scheduler overhead per step, --target selection.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 5x -benchmem ./engine/
	bash test/e2e/bench.sh

lint:
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Regenerate schema/plan.schema.json from the step types' Go structs.
schema:
	$(GO) test ./schema -run TestSchemaInSync -update

fuzz:
	$(GO) test ./engine -run '^$$' -fuzz FuzzParse -fuzztime 60s

demo: build
	$(GO) build -o bin/rootfsctl-demo ./cmd/rootfsctl-demo
	./bin/rootfsctl-demo $(BIN)

demo-hello: build
	./$(BIN) validate plans/hello.yaml
	./$(BIN) graph plans/hello.yaml
	./$(BIN) apply plans/hello.yaml
	./$(BIN) apply --log-level warn plans/hello.yaml

e2e:
	bash test/e2e/run.sh

clean:
	rm -rf bin demo
