#!/usr/bin/env bash
# Benchmark: mirror an image with 1 GiB of layers between two CNCF registries on loopback,
# against `skopeo copy --all` on the same pair, in one run. Each copy goes to a fresh
# destination registry, so neither tool finds anything already there. Reports wall time and
# peak RSS (from /usr/bin/time), and the time of a re-run with nothing to copy (hyperfine).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
runs=${RUNS:-3}
layers=${LAYERS:-4}            # layers of 256 MiB each
ensure_packages docker-registry skopeo time hyperfine jq
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
aisupply="$root/target/release/aisupply"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
registry() { start_registry "$work/$1"; pids+=("$REGISTRY_PID"); }

# The source image: $layers layers of random bytes, pushed with skopeo.
say "building a $((layers * 256)) MiB image"
layout="$work/layout"
mkdir -p "$layout/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
descriptors="" diff_ids=""
for i in $(seq 1 "$layers"); do
  head -c $((256 * 1024 * 1024)) /dev/urandom > "$work/layer"
  hex=$(put_blob "$layout" "$work/layer")
  descriptors="$descriptors${descriptors:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$hex\",\"size\":$((256 * 1024 * 1024))}"
  diff_ids="$diff_ids${diff_ids:+,}\"sha256:$hex\""
done
rm -f "$work/layer"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]},"config":{}}' "$diff_ids" > "$work/config.json"
cfg=$(put_blob "$layout" "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
  "$cfg" "$(stat -c %s "$work/config.json")" "$descriptors" > "$work/manifest.json"
man=$(put_blob "$layout" "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"big"}}]}' \
  "$man" "$(stat -c %s "$work/manifest.json")" > "$layout/index.json"
registry source
src=$REGISTRY
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:big" "docker://$src/bench/big:1"
rm -rf "$layout"

mkdir -p "$work/project" && cd "$work/project"
printf '[[image]]\nname = "big"\nref = "%s/bench/big:1"\n' "$src" > aisupply.toml
"$aisupply" lock -q

# measure NAME COMMAND...: wall seconds and peak RSS (KiB) of one run.
measure() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>&1
  read -r wall rss < "$work/time"
  echo "$name $wall $rss" >> "$work/results"
}
for run in $(seq 1 "$runs"); do
  registry "a$run"
  measure aisupply "$aisupply" mirror --no-progress --to "$REGISTRY/mirror"
  registry "s$run"
  measure skopeo skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false \
    "docker://$src/bench/big:1" "docker://$REGISTRY/mirror/bench/big:1"
done
registry last
"$aisupply" mirror -q --to "$REGISTRY/mirror"
hyperfine --warmup 1 --runs 10 --style none --export-json "$work/rerun.json" \
  "$aisupply mirror -q --to $REGISTRY/mirror" >/dev/null

awk -v layers="$layers" '
  { wall[$1] += $2; rss[$1] = ($3 > rss[$1] ? $3 : rss[$1]); n[$1]++ }
  END {
    a = wall["aisupply"] / n["aisupply"]; s = wall["skopeo"] / n["skopeo"]
    printf "| tool (%d MiB of layers) | mean wall | peak RSS |\n|---|---|---|\n", layers * 256
    printf "| aisupply mirror | %.2f s | %.1f MiB |\n", a, rss["aisupply"] / 1024
    printf "| skopeo copy --all | %.2f s | %.1f MiB |\n", s, rss["skopeo"] / 1024
    printf "\nratio aisupply / skopeo: %.2fx wall time\n", a / s
  }' "$work/results"
jq -r '"re-run with nothing to copy: \(.results[0].mean * 1000 | floor) ms (mean of 10)"' "$work/rerun.json"
