#!/usr/bin/env bash
# Benchmark: lock 200 distinct references on a local CNCF registry, against the same HEAD
# requests made by `curl --parallel` and a sequential `skopeo inspect --raw` loop, all measured
# in this one run with hyperfine. Prints a Markdown table of mean times and ratios.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
count=${COUNT:-200}

ensure_packages docker-registry skopeo curl hyperfine jq
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
aisupply="$root/target/release/aisupply"

work=$(mktemp -d)
trap 'stop_registry; rm -rf "$work"' EXIT
start_registry "$work/registry"

# One image's blobs, then $count manifests that differ by an annotation, each under its own tag.
build_layout "$work/layout" "base" "linux/amd64"
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:base" "docker://$REGISTRY/bench/app:base"
manifest=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$REGISTRY/v2/bench/app/manifests/base")
mkdir -p "$work/project"
: > "$work/urls"
for i in $(seq 1 "$count"); do
  echo "${manifest%\}},\"annotations\":{\"bench\":\"$i\"}}" |
    curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
      --data-binary @- "http://$REGISTRY/v2/bench/app/manifests/t$i" -o /dev/null
  printf '[[image]]\nname = "t%s"\nref = "%s/bench/app:t%s"\n\n' "$i" "$REGISTRY" "$i" \
    >> "$work/project/aisupply.toml"
  printf 'url = "http://%s/v2/bench/app/manifests/t%s"\n' "$REGISTRY" "$i" >> "$work/urls"
  echo "$REGISTRY/bench/app:t$i" >> "$work/refs"
done

accept='Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json'
cat > "$work/skopeo-loop.sh" <<LOOP
while read -r ref; do skopeo inspect --raw --tls-verify=false "docker://\$ref" > /dev/null; done < "$work/refs"
LOOP

cd "$work/project"
hyperfine --warmup 2 --runs "${RUNS:-10}" --export-json "$work/result.json" --style none \
  --prepare 'rm -f aisupply.lock' -n aisupply "$aisupply lock -q" \
  -n "curl --parallel" "curl -sf --parallel --parallel-max 16 -I -H '$accept' -K $work/urls -o /dev/null" \
  >/dev/null
hyperfine --warmup 1 --runs 3 --export-json "$work/skopeo.json" --style none \
  -n "skopeo inspect loop" "bash $work/skopeo-loop.sh" >/dev/null

# Every reference resolved, so the comparison is of equal work.
"$aisupply" lock -q
test "$(grep -c '^\[\[image\]\]' aisupply.lock)" -eq "$count"

jq -s -r --arg count "$count" '
  (.[0].results + .[1].results) as $r
  | ($r[] | select(.command == "aisupply") | .mean) as $base
  | "| tool (\($count) references) | mean | ratio aisupply / tool |",
    "|---|---|---|",
    ($r[] | "| \(.command) | \(.mean * 1000 | floor) ms | \($base / .mean * 100 | round / 100)× |")
' "$work/result.json" "$work/skopeo.json"
