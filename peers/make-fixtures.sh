#!/usr/bin/env bash
# Makes fixtures/peers/: real outputs of the pinned peers (peers/install.sh), each run against
# engine-sim (EMULATED llama-3.1-8b@h100) on loopback, which the importers are built and tested
# from. Every file is the tool's own output, copied unchanged; the commands are in
# fixtures/peers/COMMANDS.txt (this script writes it) and the provenance in fixtures/peers/README.md.
#
#   peers/make-fixtures.sh [OUT]     (default fixtures/peers; ≈ 1 min)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${1:-$ROOT/fixtures/peers}
bash "$HERE/install.sh" --check >/dev/null || {
  echo "make-fixtures: run peers/install.sh first" >&2
  exit 1
}
eval "$(bash "$HERE/install.sh" env)"
B=$PEERS_DIR/bin
TOK_DIR=$PEERS_DIR/tokenizer/llama-3
TOK_HF=inferbench/llama-3-tokenizer
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# engine-sim on a free port; sets ADDR to host:port once it is ready (not through $(...): the
# server would hold the substitution's pipe open).
engine() {
  local log=$WORK/engine-$1.log
  shift
  node "$ROOT/bin/inferbench.js" serve engine-sim --profile llama-3.1-8b@h100 --port 0 "$@" \
    >/dev/null 2>"$log" &
  PIDS+=($!)
  local i
  for i in $(seq 100); do
    if grep -q "ready to accept connections" "$log"; then
      ADDR=$(grep -o '127\.0\.0\.1:[0-9]*' "$log" | tail -1)
      return 0
    fi
    sleep 0.2
  done
  echo "make-fixtures: engine-sim did not start: $(cat "$log")" >&2
  return 1
}
engine ok --seed 1
OK=$ADDR
engine faulty --seed 2 --faults '{"errorRates":{"500":0.3}}'
FAULTY=$ADDR

rm -rf "$OUT.partial"
mkdir -p "$OUT.partial"
CMDS=$OUT.partial/COMMANDS.txt
: >"$CMDS"
run() {
  # The command as recorded: engine addresses and the cache path stand as names.
  printf '%s\n' "$*" | sed -e "s|$OK|\$ENGINE|g" -e "s|$FAULTY|\$FAULTY_ENGINE|g" \
    -e "s|$PEERS_DIR|\$PEERS_DIR|g" -e "s|$WORK|\$WORK|g" >>"$CMDS"
  "$@" >"$WORK/last.log" 2>&1 || {
    tail -30 "$WORK/last.log" >&2
    exit 1
  }
}

# genai-perf 0.0.16 (its perf_analyzer 2.50.0 underneath): completions, streaming, concurrency 2.
run "$B/genai-perf" profile -m llama-3.1-8b --endpoint-type completions --streaming -u "$OK" \
  --concurrency 2 --request-count 10 --synthetic-input-tokens-mean 32 --output-tokens-mean 16 \
  --random-seed 0 --tokenizer "$TOK_DIR" --artifact-dir "$WORK/genai-perf"
mkdir -p "$OUT.partial/genai-perf"
cp -r "$WORK/genai-perf"/*/ "$OUT.partial/genai-perf/"

# perf_analyzer 2.50.0 alone: chat, streaming, request rate 10/s, with genai-perf's inputs format.
"$B/python" - "$WORK/pa-inputs.json" <<'EOF'
import json, sys
words = "the quick brown fox jumps over the lazy dog and keeps running".split()
data = [{"payload": [{"model": "llama-3.1-8b", "messages": [{"role": "user",
         "content": " ".join(words[i:] + words[:i])}], "stream": True, "max_tokens": 12}]}
        for i in range(5)]
json.dump({"data": data}, open(sys.argv[1], "w"), indent=2)
EOF
mkdir -p "$OUT.partial/perf-analyzer" "$WORK/pa"
cp "$WORK/pa-inputs.json" "$OUT.partial/perf-analyzer/inputs.json"
run "$B/perf_analyzer" -m llama-3.1-8b --async --stability-percentage 999 --request-count 12 \
  -i http -u "$OK" --request-rate-range 10 --service-kind openai --endpoint v1/chat/completions \
  --input-data "$WORK/pa-inputs.json" --profile-export-file "$WORK/pa/profile_export.json"
cp "$WORK/pa/profile_export.json" "$OUT.partial/perf-analyzer/"

# AIPerf 0.13.0: chat streaming (clean), and completions streaming against a server failing 30 %.
# AIPerf loads a tokenizer offline only from the Hugging Face cache layout (install.sh makes one).
export HF_HUB_CACHE=$PEERS_DIR/hf/hub
run "$B/aiperf" profile -m llama-3.1-8b -u "http://$OK" --endpoint-type chat --streaming \
  --concurrency 2 --request-count 10 --prompt-input-tokens-mean 32 --prompt-output-tokens-mean 16 \
  --random-seed 0 --tokenizer "$TOK_HF" --ui-type none --no-server-metrics --no-gpu-telemetry \
  --output-artifact-dir "$WORK/aiperf-chat"
run "$B/aiperf" profile -m llama-3.1-8b -u "http://$FAULTY" --endpoint-type completions --streaming \
  --concurrency 2 --request-count 12 --prompt-input-tokens-mean 32 --prompt-output-tokens-mean 16 \
  --random-seed 0 --tokenizer "$TOK_HF" --ui-type none --no-server-metrics --no-gpu-telemetry \
  --output-artifact-dir "$WORK/aiperf-errors"
# OSL from the server's usage counts: a different output_sequence_length definition.
run "$B/aiperf" profile -m llama-3.1-8b -u "http://$OK" --endpoint-type chat --streaming \
  --concurrency 2 --request-count 10 --prompt-input-tokens-mean 32 --prompt-output-tokens-mean 16 \
  --random-seed 0 --tokenizer "$TOK_HF" --ui-type none --no-server-metrics --no-gpu-telemetry \
  --use-server-token-count --output-artifact-dir "$WORK/aiperf-server-tokens"
for r in chat errors server-tokens; do
  mkdir -p "$OUT.partial/aiperf/$r"
  for f in inputs.json profile_export.jsonl profile_export_aiperf.json profile_export_aiperf.csv; do
    cp "$WORK/aiperf-$r/$f" "$OUT.partial/aiperf/$r/"
  done
done

{
  echo "# made $(date -u +%Y-%m-%dT%H:%M:%SZ) by peers/make-fixtures.sh"
  tr '\n' ' ' <"$PEERS_DIR/READY" | sed 's/installed=[^ ]*//'
  echo
} >"$OUT.partial/VERSIONS.txt"
if [ -e "$OUT/README.md" ]; then cp "$OUT/README.md" "$OUT.partial/"; fi
rm -rf "$OUT"
mv "$OUT.partial" "$OUT"
echo "make-fixtures: wrote $OUT ($(du -sh "$OUT" | cut -f1))"
