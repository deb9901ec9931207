#!/usr/bin/env bash
# Benchmark: ingest scanner reports with `aisupply scan` against `jq -c . FILE > /dev/null` on
# the same file, measuring wall time and peak RSS with `/usr/bin/time -v` in this one run.
# Files: the largest shared real report, and a synthetic Grype report of ~200 MB built from
# real match objects (each with a distinct id and version, so that nothing merges away).
# Prints a Markdown table; each number is the median of $RUNS runs (default 3).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
size_mb=${SIZE_MB:-200}
runs=${RUNS:-3}

ensure_packages time jq python3
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
aisupply="$root/target/release/aisupply"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The project: one locked image, whose amd64 manifest digest the reports name.
digest="sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
cat > "$work/aisupply.toml" <<EOF
[[image]]
name = "app"
ref = "registry.example/team/app:1.0"

[scan]
fail-on = "critical"
EOF
cat > "$work/aisupply.lock" <<EOF
version = 1

[[image]]
name = "app"
reference = "registry.example/team/app:1.0"
digest = "$digest"
media-type = "application/vnd.oci.image.manifest.v1+json"
EOF

# The largest shared report when present, else our own Grype fixture, as the match template.
shared="$root/../shared/testdata/scanners/grype-debian12-python-ci-0.97.1.json"
template=$shared
[ -f "$template" ] || template="$root/testdata/scanners/grype-v6.json"

python3 - "$template" "$work/synthetic.json" "$size_mb" "$digest" <<'PY'
import json, sys
template, out, size_mb, digest = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
doc = json.load(open(template))
matches = doc["matches"]
target = size_mb * 1024 * 1024
with open(out, "w") as f:
    f.write('{"matches": [')
    written, i = 0, 0
    while written < target:
        m = json.loads(json.dumps(matches[i % len(matches)]))
        m["vulnerability"]["id"] = f"CVE-2099-{i:07d}"
        m["artifact"]["version"] = f'{m["artifact"].get("version", "")}+synthetic{i}'
        text = ("," if i else "") + json.dumps(m)
        f.write(text)
        written += len(text)
        i += 1
    source = {"type": "image", "target": {"userInput": "registry.example/team/app:1.0",
              "manifestDigest": digest, "repoDigests": []}}
    f.write('], "source": ' + json.dumps(source))
    f.write(', "descriptor": ' + json.dumps(doc.get("descriptor", {})) + "}\n")
print(f"synthetic report: {i} matches", file=sys.stderr)
PY

# Wall seconds and peak RSS (KiB) of one command, from `/usr/bin/time -v`.
measure() {
  /usr/bin/time -v "$@" > /dev/null 2> "$work/time.txt" || {
    code=$?
    # `aisupply scan` exits 1 when the policy fails; that is a result, not an error.
    [ "$code" -eq 1 ] || { cat "$work/time.txt" >&2; exit "$code"; }
  }
  local wall rss
  wall=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$work/time.txt" |
    awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt")
  echo "$wall $rss"
}

# The median of $runs measurements: "wall rss".
median() {
  for _ in $(seq 1 "$runs"); do measure "$@"; done |
    sort -n | awk '{ w[NR] = $1; r[NR] = $2 } END { m = int((NR + 1) / 2); print w[m], r[m] }'
}

# One row: `report NAME FILE REPEAT [ARGS...]`. A small file is read REPEAT times in a loop per
# measurement, because `time` counts in hundredths of a second; peak RSS is then the largest
# single run's.
report() {
  local name=$1 file=$2 repeat=$3
  shift 3
  local kb a j
  kb=$(du -k "$file" | cut -f1)
  cd "$work"
  a=$(median sh -c "for i in \$(seq $repeat); do '$aisupply' scan -q --report '$file' $* > /dev/null || [ \$? -eq 1 ]; done")
  j=$(median sh -c "for i in \$(seq $repeat); do jq -c . '$file' > /dev/null; done")
  read -r aw ar <<< "$a"
  read -r jw jr <<< "$j"
  awk -v n="$name" -v kb="$kb" -v rep="$repeat" -v aw="$aw" -v ar="$ar" -v jw="$jw" -v jr="$jr" 'BEGIN {
    size = kb >= 10240 ? sprintf("%d MB", kb / 1024) : sprintf("%d KB", kb)
    printf "| %s (%s) | %.1f ms | %.1f ms | %.2f× | %.1f MB | %.1f MB | %.2f× |\n",
      n, size, aw * 1000 / rep, jw * 1000 / rep, aw / jw, ar / 1024, jr / 1024, ar / jr
  }'
}

echo "| report | aisupply wall | jq wall | ratio | aisupply peak RSS | jq peak RSS | ratio |"
echo "|---|---|---|---|---|---|---|"
if [ -f "$shared" ]; then
  report "largest shared (Grype 0.97.1)" "$shared" 50 --target app
fi
report "synthetic Grype" "$work/synthetic.json" 1
