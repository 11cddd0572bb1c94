# mcpd — common tasks. `make help` lists them.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
DATA     ?= ./data
FUZZTIME ?= 10s

.PHONY: help build test lint run fuzz e2e e2e-replicas pg-start bench bench-load image-test clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## Build bin/mcpd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/mcpd ./cmd/mcpd

test: ## Run every test with the race detector (PostgreSQL's too when MCPD_TEST_DATABASE is set: see pg-start)
	$(GO) test -race ./...

lint: ## gofmt check, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

run: build ## Build and serve on 127.0.0.1:8080 with data in ./data
	./bin/mcpd serve --data $(DATA)

fuzz: ## Run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

e2e: build ## Real clients against a real server (needs Node 22 via e2e/node), then behind nginx under /mcpd, and a real OpenID provider
	bash e2e/clients/run.sh
	MCPD_E2E_ISSUER_PATH=/mcpd bash e2e/clients/run.sh ts-client ts-client-v2-pinned ts-client-dpop mcp-remote conformance-authorization vscode-replay
	bash e2e/idp/run.sh

e2e-replicas: ## Three replicas on one PostgreSQL behind HAProxy, driven by real clients (about a minute)
	bash e2e/replicas/run.sh

pg-start: ## Start a throw-away PostgreSQL for the tests: eval "$$(make -s pg-start)"
	@bash scripts/pgcluster.sh start $${PGDIR:-$$(mktemp -u /tmp/mcpd-pg.XXXXXX)}

bench: ## Go benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-load: ## Loopback load figures of docs/benchmarks.md (about 17 minutes)
	bash bench/run.sh

image-test: ## Build the Docker image with buildah and drive a round trip against it
	bash scripts/image-test.sh

clean: ## Remove build output
	rm -rf bin
