#!/usr/bin/env bash
# Benchmark: discover the image references of a generated tree of 10,000 files (Dockerfiles,
# compose files, Kubernetes manifests and unrelated source files), with `aisupply init --stdout`
# against `grep -rE '^(FROM|\s*image:)'` over the same tree, measured in one run with hyperfine.
# Prints a Markdown table of mean times and the ratio.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
count=${COUNT:-10000}

ensure_packages hyperfine jq
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
aisupply="$root/target/release/aisupply"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree="$work/tree"

# A quarter each: Dockerfiles, compose files, manifests (three documents) and Python files.
for i in $(seq 1 "$count"); do
  dir="$tree/svc$((i / 100))/s$i"
  mkdir -p "$dir"
  case $((i % 4)) in
    0) printf '# syntax=docker/dockerfile:1\nARG PY=3.12\nFROM python:${PY}-slim AS build\nRUN pip install -r requirements.txt\nFROM gcr.io/distroless/python3:nonroot\nCOPY --from=build /app /app\n' > "$dir/Dockerfile" ;;
    1) printf 'services:\n  app%s:\n    image: registry.example.com/team/app:%s\n  redis:\n    image: "redis:7.4-alpine"\n' "$i" "$i" > "$dir/compose.yaml" ;;
    2) mkdir -p "$dir/deploy"
       printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app%s\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: registry.example.com/team/app:%s\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: app%s\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: job%s\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - image: busybox:1.36\n' "$i" "$i" "$i" "$i" > "$dir/deploy/app.yaml" ;;
    3) printf 'import os\n\n\ndef main():\n    return os.environ.get("IMAGE", "none")\n' > "$dir/main.py" ;;
  esac
done

# Both must see every reference, so the comparison is of equal work.
found=$("$aisupply" init --stdout --format json --config "$tree/aisupply.toml" |
  jq '[.images[].found_at | length] | add')
grepped=$(grep -rE '^(FROM|\s*image:)' "$tree" | wc -l)
echo "aisupply found $found references; grep found $grepped lines" >&2

hyperfine --warmup 2 --runs "${RUNS:-10}" --export-json "$work/result.json" --style none \
  -n aisupply "$aisupply init --stdout --config $tree/aisupply.toml" \
  -n grep "grep -rE '^(FROM|\\s*image:)' $tree" \
  >/dev/null

jq -r --arg count "$count" '
  .results as $r
  | ($r[] | select(.command == "aisupply") | .mean) as $base
  | "| tool (\($count) files) | mean | ratio aisupply / tool |",
    "|---|---|---|",
    ($r[] | "| \(.command) | \(.mean * 1000 | floor) ms | \($base / .mean * 100 | round / 100)× |")
' "$work/result.json"
