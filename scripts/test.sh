#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine: installs what the tests talk to
# (CNCF distribution and skopeo) when missing, then runs every test.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"

ensure_packages docker-registry skopeo openssl
# The Debian package starts a registry of its own on port 5000 where services run; the tests
# start theirs on free loopback ports and do not need it.
cd "$root"
cargo test --locked --all-targets "$@"
