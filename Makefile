# rootfsctl: make build | test | bench | lint | demo | schema | fuzz
GO      ?= go
BIN     ?= bin/rootfsctl
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# the commit's date, not the clock's: the same commit builds the same binary
DATE    ?= $(shell git log -1 --format=%cI 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

.PHONY: all build test bench lint demo demo-hello schema fuzz clean e2e release-snapshot release-assets release-tools

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

# Release tools, pinned: built from the Go module proxy once, then reused.
GORELEASER_VERSION := v2.14.3
CYCLONEDX_VERSION  := v1.10.0
TOOLS := $(CURDIR)/bin/tools
release-tools:
	@mkdir -p $(TOOLS)
	@$(TOOLS)/goreleaser --version 2>/dev/null | grep -q "$(GORELEASER_VERSION:v%=%)" || \
	  GOBIN=$(TOOLS) $(GO) install github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION)
	@test -x $(TOOLS)/cyclonedx-gomod-$(CYCLONEDX_VERSION) || { \
	  GOBIN=$(TOOLS) $(GO) install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_VERSION) && \
	  mv $(TOOLS)/cyclonedx-gomod $(TOOLS)/cyclonedx-gomod-$(CYCLONEDX_VERSION); }
	@ln -sf cyclonedx-gomod-$(CYCLONEDX_VERSION) $(TOOLS)/cyclonedx-gomod

# Man pages and completions for the archives and packages (goreleaser's
# before hook runs this).
release-assets:
	rm -rf build/release
	$(GO) run -ldflags "-X main.version=$(VERSION)" ./cmd/rootfsctl gen-docs --date $(DATE) build/release

# Static linux/amd64 and linux/arm64 binaries, archives, checksums.txt,
# CycloneDX SBOMs and .deb/.rpm packages in dist/, offline: no publishing,
# no module downloads (the tools and modules must be in the local caches,
# which release-tools and a build fill).
# goreleaser reads the commit only in a checkout with a remote; a checkout
# without one names itself.
release-snapshot: release-tools
	if [ -z "$$(git remote)" ]; then export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url GIT_CONFIG_VALUE_0="$(CURDIR)"; fi; \
	PATH="$(TOOLS):$$PATH" GOPROXY=off GOFLAGS=-mod=mod $(TOOLS)/goreleaser release --snapshot --clean

clean:
	rm -rf bin demo dist build
