#!/usr/bin/env bash
# The demo: check the examples, print a plan, and ask `enforcer test` a few questions.
set -u
enforcer=${1:-.build/debug/enforcer}
at=2026-11-23T15:00:00Z   # a Monday, 10:00 in New York
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; echo "(exit $?)"; }

step "$enforcer" check --dir examples/enclave
step "$enforcer" check --dir examples/enforcegate
step "$enforcer" apply --dry-run --dir examples/enclave --system db-1 --at "$at"
step "$enforcer" test --dir examples/enclave --from dev-laptop-1 --to k8s-node-1 --proto tcp --port 6443 --at "$at"
step "$enforcer" test --dir examples/enclave --from k8s-node-1 --to dev-laptop-1 --proto tcp --port 22 --at "$at"
step "$enforcer" test --dir examples/enclave --from ws-1 --to srv-1 --proto tcp --port 8080 --at "$at"
step "$enforcer" test --dir examples/enclave --from dev-laptop-1 --to db-1 --proto tcp --port 5432 --at "$at"
step "$enforcer" test --dir examples/enclave --from dev-laptop-1 --to db-1 --proto tcp --port 5432 --at 2026-11-24T03:00:00Z
step "$enforcer" test --dir examples/enclave --from ws-2 --to 10.30.0.5 --proto tcp --port 631 --at "$at"
step "$enforcer" test-uri --dir examples/enforcegate https://bit.ly/abc
step "$enforcer" test-uri --dir examples/enforcegate https://www.admin.ch/
step "$enforcer" test-uri --dir examples/enforcegate https://www.reddit.com/ --at "$at"
step "$enforcer" test-uri --dir examples/enforcegate https://www.reddit.com/ --at 2026-11-23T19:00:00Z
