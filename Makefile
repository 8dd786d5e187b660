# enforcer: `make demo` shows it working, `make test` runs every test, `make install` puts a
# release build on this host (PREFIX, default /usr/local; DESTDIR for a staging root).
# demo and test install the Debian packages they need first (as root, or through sudo).

SWIFT       ?= swift
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := nftables libnftnl-dev libmnl-dev libnetfilter-queue-dev libpcre2-dev pkg-config \
                libsqlite3-dev sqlite3 etcd-server etcd-client man-db iperf3 iproute2 iputils-ping tzdata curl socat openssl gnutls-bin netcat-openbsd python3
ENFORCER    := .build/debug/enforcer

# Where `make install` puts things. The binary carries the Swift runtime inside it
# (--static-swift-stdlib), so it runs on a host without the toolchain.
PREFIX      ?= /usr/local
DESTDIR     ?=
SYSCONFDIR  ?= /etc
BINDIR      := $(PREFIX)/bin
MANDIR      := $(PREFIX)/share/man/man8
UNITDIR     ?= $(PREFIX)/lib/systemd/system
BASHDIR     := $(PREFIX)/share/bash-completion/completions
ZSHDIR      := $(PREFIX)/share/zsh/site-functions
FISHDIR     := $(PREFIX)/share/fish/vendor_completions.d
RELEASE     := .build/release/enforcer
# What install added, so that uninstall removes that and nothing else.
MANIFEST    := $(PREFIX)/share/enforcer/installed-files
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
install: release
	@rm -rf $(STAGE) && mkdir -p $(STAGE)
	$(RELEASE) --experimental-dump-help | python3 scripts/manpage.py dist/enforcer.8.extra "$$($(RELEASE) --version)" \
		| sed -e 's|/usr/local/lib/systemd/system|$(UNITDIR)|g' -e 's|/etc/enforcer|$(SYSCONFDIR)/enforcer|g' > $(STAGE)/enforcer.8
	$(RELEASE) --generate-completion-script bash > $(STAGE)/enforcer.bash
	$(RELEASE) --generate-completion-script zsh > $(STAGE)/_enforcer
	$(RELEASE) --generate-completion-script fish > $(STAGE)/enforcer.fish
	sed -e 's|/usr/local/bin/enforcer|$(BINDIR)/enforcer|g' -e 's|/etc/enforcer|$(SYSCONFDIR)/enforcer|g' \
		examples/service/enforcer.service > $(STAGE)/enforcer.service
	install -D -m 0755 $(RELEASE) $(DESTDIR)$(BINDIR)/enforcer
	install -D -m 0644 $(STAGE)/enforcer.8 $(DESTDIR)$(MANDIR)/enforcer.8
	install -D -m 0644 $(STAGE)/enforcer.bash $(DESTDIR)$(BASHDIR)/enforcer
	install -D -m 0644 $(STAGE)/_enforcer $(DESTDIR)$(ZSHDIR)/_enforcer
	install -D -m 0644 $(STAGE)/enforcer.fish $(DESTDIR)$(FISHDIR)/enforcer.fish
	install -D -m 0644 $(STAGE)/enforcer.service $(DESTDIR)$(UNITDIR)/enforcer.service
	@mkdir -p $(DESTDIR)$(dir $(MANIFEST))
	@printf '%s\n' $(BINDIR)/enforcer $(MANDIR)/enforcer.8 $(BASHDIR)/enforcer $(ZSHDIR)/_enforcer \
		$(FISHDIR)/enforcer.fish $(UNITDIR)/enforcer.service > $(DESTDIR)$(MANIFEST)
	@# The configuration only where there is none: an operator's own is never replaced.
	@[ -d $(DESTDIR)$(SYSCONFDIR)/enforcer ] || echo $(SYSCONFDIR)/enforcer/ > $(STAGE)/created-config-dir
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/enforcer/enforcer.conf ]; then \
		install -D -m 0644 examples/service/enforcer.conf $(DESTDIR)$(SYSCONFDIR)/enforcer/enforcer.conf && \
		echo "installed $(SYSCONFDIR)/enforcer/enforcer.conf" && echo $(SYSCONFDIR)/enforcer/enforcer.conf >> $(DESTDIR)$(MANIFEST); \
	else echo "kept $(SYSCONFDIR)/enforcer/enforcer.conf"; fi
	@if [ ! -d $(DESTDIR)$(SYSCONFDIR)/enforcer/rules.d ]; then \
		install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/enforcer/rules.d && echo $(SYSCONFDIR)/enforcer/rules.d/ >> $(DESTDIR)$(MANIFEST); fi
	@cat $(STAGE)/created-config-dir >> $(DESTDIR)$(MANIFEST) 2>/dev/null || true
	@echo "installed $$($(DESTDIR)$(BINDIR)/enforcer --version) into $(DESTDIR)$(PREFIX)"

# Removes what install listed in its manifest. The configuration it installed goes only if
# nobody changed it, and rules.d/ only if it is empty: an operator's policy is never removed.
uninstall:
	@test -f $(DESTDIR)$(MANIFEST) || { echo "nothing to uninstall: no $(DESTDIR)$(MANIFEST)"; exit 1; }
	@while read -r path; do \
		target=$(DESTDIR)$$path; \
		case "$$path" in \
		*/enforcer.conf) if cmp -s $$target examples/service/enforcer.conf; then rm -f $$target; else echo "kept $$path (changed since install)"; fi ;; \
		*/) rmdir $$target 2>/dev/null || echo "kept $$path (not empty)" ;; \
		*) rm -f $$target ;; \
		esac; \
	done < $(DESTDIR)$(MANIFEST); \
	rm -f $(DESTDIR)$(MANIFEST); rmdir $(DESTDIR)$(dir $(MANIFEST)) 2>/dev/null; true

clean:
	rm -rf .build
