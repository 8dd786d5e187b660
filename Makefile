# enforcer: `make demo` shows it working, `make test` runs every test, `make install` puts a
# release build on this host (PREFIX, default /usr/local; DESTDIR for a staging root).
# demo and test install the Debian packages they need first (as root, or through sudo).

SWIFT       ?= swift
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := nftables prometheus libnftnl-dev libmnl-dev libnetfilter-queue-dev libpcre2-dev libssl-dev pkg-config \
                libsqlite3-dev sqlite3 etcd-server etcd-client man-db iperf3 iproute2 iputils-ping tzdata curl socat openssl gnutls-bin netcat-openbsd python3 \
                openssh-server openssh-client
ENFORCER    := .build/debug/enforcer

# Where `make install` puts things. The binary carries the Swift runtime inside it
# (--static-swift-stdlib), so it runs on a host without the toolchain.
PREFIX      ?= /usr/local
DESTDIR     ?=
SYSCONFDIR  ?= /etc
BINDIR      := $(PREFIX)/bin
UNITDIR     ?= $(PREFIX)/lib/systemd/system
RELEASE     := .build/release/enforcer
STAGE       := .build/install-stage

.PHONY: all deps build release test demo bench fuzz clean install uninstall

release:
	$(SWIFT) build -c release --static-swift-stdlib --product enforcer

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
		case " $$missing " in *" openssh-server "*) \
			echo "openssh-server is for the tests' own sshd only: the system's ssh service it brought is stopped and disabled"; \
			$(SUDO) systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true ;; \
		esac; \
	fi

build: deps
	$(SWIFT) build

# Unit tests, CLI golden tests, and the kernel tests in throwaway network namespaces (root).
test: deps release
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

# The man page and the completions are made by the binary itself (from its command
# definitions); the unit and the man page name the directories of this PREFIX.
# SKIP_BUILD=1 installs the release binary as it is (the install test does so, as it runs
# inside `swift test`, which holds the build directory).
install: $(if $(SKIP_BUILD),,release)
	@test -x $(RELEASE) || { echo "no $(RELEASE): run make release first" >&2; exit 1; }
	@rm -rf $(STAGE) && mkdir -p $(STAGE)
	$(RELEASE) --experimental-dump-help | python3 scripts/manpage.py dist/enforcer.8.extra "$$($(RELEASE) --version)" \
		| sed -e 's|/usr/local/lib/systemd/system|$(UNITDIR)|g' -e 's|/etc/enforcer|$(SYSCONFDIR)/enforcer|g' > $(STAGE)/enforcer.8
	$(RELEASE) --generate-completion-script bash > $(STAGE)/enforcer.bash
	$(RELEASE) --generate-completion-script zsh > $(STAGE)/_enforcer
	$(RELEASE) --generate-completion-script fish > $(STAGE)/enforcer.fish
	sed -e 's|/usr/local/bin/enforcer|$(BINDIR)/enforcer|g' -e 's|/etc/enforcer|$(SYSCONFDIR)/enforcer|g' \
		examples/service/enforcer.service > $(STAGE)/enforcer.service
	cp $(RELEASE) $(STAGE)/enforcer && strip $(STAGE)/enforcer
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" SYSCONFDIR="$(SYSCONFDIR)" UNITDIR="$(UNITDIR)" bash scripts/install.sh install $(STAGE)
	@echo "installed $$($(DESTDIR)$(BINDIR)/enforcer --version) into $(DESTDIR)$(PREFIX)"

# Removes what install added (its manifest says what): the configuration only if nobody
# changed it, directories only if empty. An operator's policy is never removed.
uninstall:
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" SYSCONFDIR="$(SYSCONFDIR)" UNITDIR="$(UNITDIR)" bash scripts/install.sh uninstall

clean:
	rm -rf .build
