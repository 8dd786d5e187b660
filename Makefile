# enforcer: `make demo` shows it working, `make test` runs every test.
# Both install the Debian packages they need first (as root, or through sudo).

SWIFT       ?= swift
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := nftables libnftnl-dev libmnl-dev libnetfilter-queue-dev libpcre2-dev pkg-config \
                libsqlite3-dev sqlite3 etcd-server etcd-client man-db iperf3 iproute2 iputils-ping tzdata curl socat openssl gnutls-bin netcat-openbsd python3
ENFORCER    := .build/debug/enforcer

.PHONY: all deps build test demo bench fuzz clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

# Unit tests, CLI golden tests, and the kernel tests in throwaway network namespaces (root).
test: deps
	$(SWIFT) build --build-tests
	$(SUDO) $(SWIFT) test --skip-build --skip EtcdTests
	# The etcd client's tests time leases and tokens in seconds against a real etcd: they run
	# on their own, not beside suites that hold both cores for minutes.
	$(SUDO) $(SWIFT) test --skip-build --filter EtcdTests

demo: build
	@$(SUDO) bash scripts/demo.sh $(ENFORCER)

# Benchmarks beside their obvious alternatives, printing ratios (root: namespaces, NFQUEUE).
bench: deps
	$(SWIFT) build -c release
	$(SUDO) bash bench/run.sh

# libFuzzer on the TLS and HTTP parsers (its own package under fuzz/). FUZZ_SECONDS=600 by default.
fuzz: deps
	bash fuzz/run.sh

clean:
	rm -rf .build
