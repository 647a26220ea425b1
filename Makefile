# The daemon's build, tests and benchmarks. `make run` starts it, `make test`
# passes on a fresh Debian machine as root (it installs what tests need).

GO        ?= go
PREFIX    ?= /usr/local
VERSION   ?= $(shell git describe --match 'v[0-9]*' --dirty='.m' --always 2>/dev/null || echo unknown)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell if ! git diff --no-ext-diff --quiet --exit-code 2>/dev/null; then echo .m; fi)
PKG       := github.com/llitfkitfk/containerd
LDFLAGS   := -X $(PKG)/version.Version=$(VERSION) -X $(PKG)/version.Revision=$(REVISION)
# Where `make run` keeps its data; the defaults are containerd's.
RUN_ARGS  ?=

.PHONY: all build binaries test test-deps unit integration bench install protos check-protos clean run fuzz \
	cri-deps critest cri-integration cri-kubelet

all: build

build binaries: bin/containerd bin/containerd-shim-runc-v2 bin/ctr

# nri_no_wasm: NRI without WebAssembly plugins, so that the daemon does
# not set up a wazero runtime for them at start-up; NRI plugins run as
# processes and over the socket. (wazero stays linked: NRI's api package
# imports it.) urfave_cli_no_docs and grpcnotrace, as for ctr below: the
# daemon never writes its man page nor serves gRPC's request traces, and
# without them it is 0.7 MB smaller, with less of it mapped and no
# blackfriday tables or x/net/trace on its heap.
DAEMON_TAGS := nri_no_wasm urfave_cli_no_docs grpcnotrace
# Static, like the shim and ctr (and containerd 2.x's release builds): the
# daemon's only cgo is the standard library's optional DNS and user lookup,
# and without it no libc is mapped into the daemon, 1.5 MB of its RSS.
bin/containerd: FORCE
	CGO_ENABLED=0 $(GO) build -tags '$(DAEMON_TAGS)' -ldflags '$(LDFLAGS)' -o $@ ./cmd/containerd

# The runc shim, static as containerd builds its shims: without cgo no libc
# is mapped into every one of the (many, long-lived) shim processes.
bin/containerd-shim-runc-v2: FORCE
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $@ ./cmd/containerd-shim-runc-v2

# The client; static like the shim, so it runs on any host it is copied to.
# Every ctr command starts a process, whose package initialisation is a
# good part of a short command's time: the tags leave out what ctr never
# uses (urfave/cli's man page writer, gRPC's request tracing), about a
# fifth of it (GODEBUG=inittrace: ~15.5 ms to ~12 ms here).
CTR_TAGS := urfave_cli_no_docs,grpcnotrace
bin/ctr: FORCE
	CGO_ENABLED=0 $(GO) build -tags '$(CTR_TAGS)' -ldflags '$(LDFLAGS)' -o $@ ./cmd/ctr

FORCE:

# What the tests drive the daemon with: the distribution's ctr, its
# containerd-shim-runc-v2 and runc. Installed only when missing. And
# containerd 2.x's containerd, ctr and shim, built from the Go module proxy
# into bin/containerd2 when missing or of another version, for the tests
# against containerd's own daemons and shims (integration/peers_test.go).
test-deps:
	@script/test-deps.sh
	@script/containerd2.sh

# Containers run through our shim (bin/containerd-shim-runc-v2); then the
# tests that run containers pass again through the distribution's shim, the
# compatibility pass ($CONTAINERD_SHIM; the peer tests, which pair shims
# with containerd's daemons themselves, are left out of it).
# Last, integration/client: containerd's content and snapshotter suites and
# its Go client's basic flows against the daemon, from a module of their own
# (integration/client/go.mod), which the root module's ./... leaves out.
# The integration tests drive the daemon with our ctr (bin/ctr); then the
# tests written around ctr run again with the distribution's ctr 1.6
# ($CTR), which must keep working against the daemon as it did, and the
# transfer tests with containerd 2.x's ctr.
# The CRI: the crictl flows (integration/cri) run with the integration
# tests; critest's conformance specs last, against the daemon.
DISTRO_SHIM     ?= /usr/bin/containerd-shim-runc-v2
DISTRO_CTR      ?= /usr/bin/ctr
CONTAINER_TESTS := ^(TestCtr(Run|Containers|Tasks|TaskSurvivesRestart|ShimCrashLeavesNoZombies)|TestShim.*)$$
CTR_TESTS       := ^(TestCtr.*|TestLeaseHoldsContent|TestContentResumeAfterDaemonKill)$$

test: test-deps cri-deps build check-protos
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./integration/...
	$(GO) test -race -count=1 ./...
	CONTAINERD_BINARY=$(CURDIR)/bin/containerd $(GO) test -count=1 -tags integration -v ./integration/...
	CONTAINERD_SHIM=$(DISTRO_SHIM) CONTAINERD_BINARY=$(CURDIR)/bin/containerd \
		$(GO) test -count=1 -tags integration -v -run '$(CONTAINER_TESTS)' ./integration/
	CTR=$(DISTRO_CTR) CONTAINERD_BINARY=$(CURDIR)/bin/containerd \
		$(GO) test -count=1 -tags integration -v -run '$(CTR_TESTS)' ./integration/
	TRANSFER_CTR=containerd2 CONTAINERD_BINARY=$(CURDIR)/bin/containerd \
		$(GO) test -count=1 -tags integration -v -run '^TestTransfer' ./integration/
	cd integration/client && $(GO) vet ./...
	cd integration/client && CONTAINERD_BINARY=$(CURDIR)/bin/containerd $(GO) test -count=1 -v ./...
	cd integration/client && CONTAINERD_SHIM=$(DISTRO_SHIM) CONTAINERD_BINARY=$(CURDIR)/bin/containerd \
		$(GO) test -count=1 -v -run '^TestContainers$$' ./...
	CRI_CRITEST=1 CRITEST_PARALLEL=$(CRITEST_PARALLEL) $(CRI_TEST) -run '^TestCritest$$'

# The CRI's tests (integration/cri): crictl flows, and critest (cri-tools
# v1.37.0) in its conformance mode, against the daemon ($(CURDIR)/bin/containerd),
# or against containerd 2.x's own with CRI_DAEMON=containerd2 (the reference
# the harness is checked against: `make critest CRI_DAEMON=containerd2`).
# They need critest, crictl, runc 1.4 and the CNI plugins, built from the Go
# module proxy into bin/cri by `make cri-deps`. critest's run takes minutes.
CRI_DAEMON ?=
# critest runs its specs on this many ginkgo nodes (4: about 4 minutes
# here against containerd 2.4.2, where one node takes about 7).
CRITEST_PARALLEL ?= 4
CRI_TEST    = CRI_DAEMON=$(CRI_DAEMON) CONTAINERD_BINARY=$(CURDIR)/bin/containerd \
	$(GO) test -count=1 -tags integration -v -timeout 30m ./integration/cri/
cri-deps: test-deps
	@script/cri-deps.sh
	@script/cri-kubelet.sh
critest: cri-deps build
	CRI_CRITEST=1 CRITEST_PARALLEL=$(CRITEST_PARALLEL) $(CRI_TEST) -run '^TestCritest$$'
cri-integration: cri-deps build
	$(CRI_TEST) -run '^TestCrictl'
# A real kubelet (k8s.io/kubernetes v1.37.2, built into bin/cri/kubelet by
# script/cri-kubelet.sh, part of cri-deps: about six minutes the first
# time) in standalone mode runs a static pod on the daemon; the test also
# runs with the other integration tests of `make test`. It takes about 75
# seconds, most of it the kubelet's one-minute container GC period.
cri-kubelet: cri-deps build
	$(CRI_TEST) -run '^TestKubeletStaticPod$$'

# The daemon against containerd 2.x (bin/containerd2, which test-deps
# builds from the Go module proxy when missing) and the distribution's 1.6
# (/usr/bin/containerd, which test-deps installs); cri-deps is for the cri
# workload's runc and CNI plugins.
bench: test-deps cri-deps build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./cmd/containerd-bench -ours $(CURDIR)/bin/containerd \
		-theirs $(CURDIR)/bin/containerd2/containerd -distro /usr/bin/containerd

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./filters/
	$(GO) test -run '^$$' -fuzz FuzzApply -fuzztime 60s ./archive/

install: build
	install -D -m 0755 bin/containerd $(DESTDIR)$(PREFIX)/bin/containerd
	install -D -m 0755 bin/containerd-shim-runc-v2 $(DESTDIR)$(PREFIX)/bin/containerd-shim-runc-v2
	install -D -m 0755 bin/ctr $(DESTDIR)$(PREFIX)/bin/ctr

protos:
	script/protos.sh

check-protos:
	script/protos.sh check

# bin/ first on PATH: the daemon looks shims up on PATH before beside
# itself, as containerd does, and must find ours before a distribution's.
run: build
	PATH=$(CURDIR)/bin:$$PATH ./bin/containerd $(RUN_ARGS)

clean:
	rm -rf bin
