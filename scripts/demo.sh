#!/usr/bin/env bash
# The main job, end to end and offline: build aisupply, start a throwaway registry on loopback
# with demo images, then `aisupply lock` and `aisupply verify` them, and show what a moved tag
# looks like. Needs only Debian/Ubuntu packages (installed when missing) and Rust.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"

ensure_packages docker-registry skopeo
say "building aisupply"
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
aisupply="$root/target/release/aisupply"

work=$(mktemp -d)
trap 'stop_registry; rm -rf "$work"' EXIT
start_registry "$work/registry"
say "registry listening on $REGISTRY"

# Two demo images: a single-platform OCI image and a two-platform index.
build_layout "$work/layout" "hello" "linux/amd64"
skopeo copy --quiet --dest-tls-verify=false \
  "oci:$work/layout:hello" "docker://$REGISTRY/demo/hello:1.0"
build_layout "$work/layout" "multi" "linux/amd64" "linux/arm64/v8"
skopeo copy --quiet --all --dest-tls-verify=false \
  "oci:$work/layout:multi" "docker://$REGISTRY/demo/multi:1.0"

cd "$work"
cat > aisupply.toml <<TOML
[[image]]
name = "hello"
ref = "$REGISTRY/demo/hello:1.0"

[[image]]
name = "multi"
ref = "$REGISTRY/demo/multi:1.0"
platforms = ["linux/arm64"]
TOML

say "aisupply.toml"; cat aisupply.toml
say "aisupply lock"; "$aisupply" lock
say "aisupply.lock"; cat aisupply.lock
say "aisupply verify"; "$aisupply" verify

say "someone pushes a new image under demo/hello:1.0"
build_layout "$work/layout2" "hello2" "linux/amd64"
skopeo copy --quiet --dest-tls-verify=false \
  "oci:$work/layout2:hello2" "docker://$REGISTRY/demo/hello:1.0"
say "aisupply verify (drift is a warning)"; "$aisupply" verify
say "aisupply verify --fail-on-drift"
if "$aisupply" verify --fail-on-drift; then
  echo "expected exit code 1" >&2
  exit 1
else
  echo "exit code $? — the gate caught the moved tag"
fi
say "aisupply mirror: the locked images into the site's own registry, digests unchanged"
first=$REGISTRY first_pid=$REGISTRY_PID
start_registry "$work/site"
site=$REGISTRY site_pid=$REGISTRY_PID
REGISTRY=$first REGISTRY_PID=$first_pid
trap 'kill "$site_pid" 2>/dev/null || true; stop_registry; rm -rf "$work"' EXIT
"$aisupply" lock --update hello -q
"$aisupply" mirror --to "$site/mirror" --map mirror.json
say "a second run copies nothing"; "$aisupply" mirror --to "$site/mirror"
say "aisupply mirror --to oci:./carry (for an air gap)"; "$aisupply" mirror --to oci:./carry
say "demo done"
