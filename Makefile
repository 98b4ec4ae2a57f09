# upgradeguard - see README.md.
GO            ?= go
STATICCHECK   ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
TESTBED_CACHE ?= $(HOME)/.cache/upgradeguard-testbed
export UPGRADEGUARD_TESTBED_CACHE := $(TESTBED_CACHE)

.PHONY: all build test test-short lint generate generate-check testbed-deps demo bench bench-scale clean

all: lint build test

build:
	$(GO) build -o bin/upgradeguard ./cmd/upgradeguard

# The whole suite: unit tests and the end-to-end tests against the real
# components of the testbed, which testbed-deps installs or builds first.
test: testbed-deps
	$(GO) test -count=1 -timeout 40m ./...

# The quick inner loop: unit tests only (end-to-end tests skip under -short).
test-short:
	$(GO) test -short ./...

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run $(STATICCHECK) ./...

# The PrometheusRule, rule file, dashboards and their ConfigMaps under
# deploy/generated, and preflight's API lifecycle table
# internal/preflight/removals_generated.go (read from the published
# k8s.io/api, apiextensions-apiserver and kube-aggregator modules from v0.19
# to go.mod's; committed; the test suite fails when they are stale).
generate:
	$(GO) run ./cmd/upgradeguard generate --out deploy/generated
	$(GO) run ./internal/preflight/internal/genremovals -out internal/preflight/removals_generated.go

generate-check:
	$(GO) run ./cmd/upgradeguard generate --out deploy/generated --check
	$(GO) run ./internal/preflight/internal/genremovals -out internal/preflight/removals_generated.go -check

testbed-deps:
	bash internal/testbed/deps.sh

# A simulated cluster on the testbed with the exporter, Prometheus and Thanos;
# stays up until Ctrl-C.
demo: testbed-deps
	$(GO) build -o bin/demo ./internal/demo
	./bin/demo

# The scale scenario (not part of test): 500 kwok nodes with 10,000 pods of
# 500 Deployments and PDBs, then 2,000 nodes with 40,000 pods and 2,000 PDBs;
# the exporters' heap profiles go to bin/bench-scale/_artifacts.
# UPGRADEGUARD_SCALE_NODES=500 runs one size, UPGRADEGUARD_SCALE_SHARDS=2 also
# measures two shards.
bench-scale: testbed-deps
	mkdir -p bin/bench-scale
	$(GO) test -tags scale -run TestScale -v -count=1 -timeout 150m -artifacts -outputdir $(CURDIR)/bin/bench-scale ./internal/e2e/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./collectors/...

clean:
	rm -rf bin
