# Shared shell helpers of scripts/: package installs, a throwaway registry, demo images.
# Sourced, not run.

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

# Install Debian packages that are missing (as root, or through sudo).
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# A free TCP port on 127.0.0.1.
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$(( (RANDOM % 20000) + 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

# Start CNCF distribution on loopback with storage under $1; sets REGISTRY and REGISTRY_PID.
start_registry() {
  local dir=$1 port
  mkdir -p "$dir/data"
  port=$(free_port)
  cat > "$dir/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  REGISTRY_PID=$!
  REGISTRY="127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "registry did not start; its log:" >&2
  cat "$dir/log" >&2
  return 1
}

stop_registry() {
  if [ -n "${REGISTRY_PID:-}" ]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
  fi
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# Write a blob into the OCI layout $1 and print its digest hex.
put_blob() {
  local layout=$1 file=$2 hex
  hex=$(sha256 "$file")
  mkdir -p "$layout/blobs/sha256"
  cp "$file" "$layout/blobs/sha256/$hex"
  echo "$hex"
}

# Add an image named $2 to the OCI layout $1: one manifest per platform given, wrapped in an
# index when there is more than one. Content differs per name, so digests differ too.
build_layout() {
  local layout=$1 name=$2; shift 2
  local tmp entries="" platform os arch variant
  tmp=$(mktemp -d)
  mkdir -p "$layout"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
  [ -f "$layout/index.json" ] || echo '{"schemaVersion":2,"manifests":[]}' > "$layout/index.json"
  for platform in "$@"; do
    IFS=/ read -r os arch variant <<<"$platform"
    mkdir -p "$tmp/root"
    echo "$name for $platform" > "$tmp/root/hello.txt"
    tar -C "$tmp/root" --sort=name --mtime=@0 --owner=0 --group=0 -cf "$tmp/layer.tar" .
    gzip -n -c "$tmp/layer.tar" > "$tmp/layer.tar.gz"
    local diff_id layer layer_size cfg cfg_size man man_size
    diff_id=$(sha256 "$tmp/layer.tar")
    layer=$(put_blob "$layout" "$tmp/layer.tar.gz")
    layer_size=$(stat -c %s "$tmp/layer.tar.gz")
    printf '{"architecture":"%s","os":"%s"%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"config":{}}' \
      "$arch" "$os" "${variant:+,\"variant\":\"$variant\"}" "$diff_id" > "$tmp/config.json"
    cfg=$(put_blob "$layout" "$tmp/config.json")
    cfg_size=$(stat -c %s "$tmp/config.json")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
      "$cfg" "$cfg_size" "$layer" "$layer_size" > "$tmp/manifest.json"
    man=$(put_blob "$layout" "$tmp/manifest.json")
    man_size=$(stat -c %s "$tmp/manifest.json")
    entries="$entries${entries:+,}{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$man\",\"size\":$man_size,\"platform\":{\"architecture\":\"$arch\",\"os\":\"$os\"${variant:+,\"variant\":\"$variant\"}}}"
    rm -rf "$tmp/root"
  done
  local top_type top_digest top_size
  if [ $# -eq 1 ]; then
    top_type=application/vnd.oci.image.manifest.v1+json
    top_digest=$man top_size=$man_size
  else
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}' \
      "$entries" > "$tmp/index.json"
    top_type=application/vnd.oci.image.index.v1+json
    top_digest=$(put_blob "$layout" "$tmp/index.json")
    top_size=$(stat -c %s "$tmp/index.json")
  fi
  local entry="{\"mediaType\":\"$top_type\",\"digest\":\"sha256:$top_digest\",\"size\":$top_size,\"annotations\":{\"org.opencontainers.image.ref.name\":\"$name\"}}"
  local current
  current=$(cat "$layout/index.json")
  if [ "$current" = '{"schemaVersion":2,"manifests":[]}' ]; then
    printf '{"schemaVersion":2,"manifests":[%s]}' "$entry" > "$layout/index.json"
  else
    printf '%s' "${current%]\}},$entry]}" > "$layout/index.json"
  fi
  rm -rf "$tmp"
}
