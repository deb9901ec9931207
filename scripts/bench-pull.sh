#!/usr/bin/env bash
# Benchmark `aisupply pull` and `verify`'s model check, in one run, against the Hub stand-in
# (examples/hub_standin.rs) on loopback:
#   - wall time of pulling the real all-MiniLM-L6-v2 and a synthetic 2 GiB LFS file, against
#     curl fetching the same files and `hf download` (huggingface_hub, from PyPI);
#   - peak RSS of pulling the 2 GiB file;
#   - `verify` hashing throughput against `openssl dgst -sha256` on the same file.
# Each timing is the median of RUNS runs (default 3). Prints a Markdown table.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
runs=${RUNS:-3}
work=${BENCH_DIR:-$root/target/bench-pull}
mkdir -p "$work"

ensure_packages curl openssl time
python3 -c 'import huggingface_hub' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check huggingface_hub

say "building (release)"
cd "$root"
cargo build --quiet --release --bin aisupply --example hub_standin
aisupply=$root/target/release/aisupply

say "preparing a 2 GiB synthetic LFS file"
big=$work/synthetic-2g.safetensors
if [ "$(stat -c %s "$big" 2>/dev/null || echo 0)" != 2147483648 ]; then
  # Incompressible and reproducible; openssl dies of SIGPIPE when head has enough.
  { openssl enc -aes-128-ctr -pass pass:aisupply -nosalt -pbkdf2 </dev/zero 2>/dev/null || true; } |
    head -c 2147483648 >"$big"
fi

say "starting the Hub stand-in"
coproc STANDIN { "$root/target/release/examples/hub_standin" --lfs "bench/synthetic-2g=$big"; }
read -r line <&"${STANDIN[0]}"
export HF_ENDPOINT=${line#HF_ENDPOINT=}
export HF_HUB_DISABLE_XET=1 HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1
unset HF_TOKEN
trap 'eval "exec ${STANDIN[1]}>&-"; wait "$STANDIN_PID" 2>/dev/null || true' EXIT

project=$work/project
rm -rf "$project" && mkdir -p "$project"
cat >"$project/aisupply.toml" <<'TOML'
[[model]]
repo = "sentence-transformers/all-MiniLM-L6-v2"

[[model]]
repo = "bench/synthetic-2g"
TOML
(cd "$project" && "$aisupply" lock -q)

# Seconds of wall time and KiB of peak RSS of one command, as "SECONDS KIB".
measure() {
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || {
    cat "$work/stderr" >&2
    return 1
  }
  cat "$work/time"
}

# The median of the first field of lines on stdin.
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# A curl config for model $1 fetching each locked file, at the locked commit, into dir $2.
curl_config() {
  python3 - "$project/aisupply.lock" "$1" "$HF_ENDPOINT" "$2" <<'PY'
import sys, tomllib
lock = tomllib.load(open(sys.argv[1], "rb"))
for m in lock["model"]:
    if m["repo"] == sys.argv[2]:
        for f in m["file"]:
            print(f'url = "{sys.argv[3]}/{m["repo"]}/resolve/{m["commit"]}/{f["path"]}"')
            print(f'output = "{sys.argv[4]}/{f["path"]}"')
PY
}

declare -A wall rss
for model in sentence-transformers/all-MiniLM-L6-v2 bench/synthetic-2g; do
  curl_config "$model" "$work/out-curl" >"$work/curl.cfg"
  for tool in aisupply curl curl-sync hf; do
    : >"$work/samples"
    for _ in $(seq "$runs"); do
      dest=$work/out-${tool%-sync}
      rm -rf "$dest" && mkdir -p "$dest"
      sync
      case $tool in
        aisupply) sample=$(cd "$project" && measure "$aisupply" pull -q --cache-dir "$dest" "$model") ;;
        curl) sample=$(measure curl -sSfL --create-dirs --parallel --parallel-max 4 -K "$work/curl.cfg") ;;
        # aisupply makes each file durable before placing it; this is curl doing the same.
        curl-sync) sample=$(measure sh -c "curl -sSfL --create-dirs --parallel --parallel-max 4 \
          -K '$work/curl.cfg' && sync -f '$work/out-curl'") ;;
        hf) sample=$(measure hf download "$model" --cache-dir "$dest" --quiet) ;;
      esac
      echo "$sample" >>"$work/samples"
    done
    wall[$model/$tool]=$(median <"$work/samples")
    rss[$model/$tool]=$(awk '{ print $2 }' "$work/samples" | sort -n | tail -1)
    say "$model via $tool: ${wall[$model/$tool]} s, peak RSS ${rss[$model/$tool]} KiB"
  done
done

say "verify hashing throughput against openssl"
cache=$work/out-verify
rm -rf "$cache" && mkdir -p "$cache"
(cd "$project" && "$aisupply" pull -q --cache-dir "$cache")
blob=$(find "$cache/models--bench--synthetic-2g/blobs" -type f | head -1)
: >"$work/samples-verify" && : >"$work/samples-openssl"
cat "$blob" >/dev/null # warm the page cache for both
for _ in $(seq "$runs"); do
  (cd "$project" && HF_HUB_CACHE=$cache measure "$aisupply" verify --offline -q) >>"$work/samples-verify"
  measure openssl dgst -sha256 "$blob" >>"$work/samples-openssl"
done
# verify hashes every locked file (2 GiB + the real model, in parallel on 2 cores); the 2 GiB
# file alone bounds it, hashed by one thread.
verify_s=$(median <"$work/samples-verify")
openssl_s=$(median <"$work/samples-openssl")
mib=2048

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "| pull (wall s) | aisupply | curl | curl + sync | hf download | aisupply / curl | aisupply / curl + sync | aisupply / hf |"
echo "|---|---|---|---|---|---|---|---|"
for model in sentence-transformers/all-MiniLM-L6-v2 bench/synthetic-2g; do
  a=${wall[$model/aisupply]} c=${wall[$model/curl]} s=${wall[$model/curl-sync]} h=${wall[$model/hf]}
  echo "| $model | $a | $c | $s | $h | $(ratio "$a" "$c")× | $(ratio "$a" "$s")× | $(ratio "$a" "$h")× |"
done
echo
echo "| measurement | value |"
echo "|---|---|"
echo "| peak RSS, pull of the 2 GiB file | $(( ${rss[bench/synthetic-2g/aisupply]} / 1024 )) MiB |"
echo "| peak RSS, hf download of the 2 GiB file | $(( ${rss[bench/synthetic-2g/hf]} / 1024 )) MiB |"
echo "| verify (2 GiB + real model), wall | $verify_s s ($(ratio $mib "$verify_s") MiB/s) |"
echo "| openssl dgst -sha256 (2 GiB), wall | $openssl_s s ($(ratio $mib "$openssl_s") MiB/s) |"
echo "| verify throughput / openssl, per core | $(ratio "$openssl_s" "$verify_s")× |"
