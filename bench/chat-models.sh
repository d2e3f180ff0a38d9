#!/usr/bin/env bash
# The models behind BENCHMARKS.md's chat / RLHF figures, trained reproducibly, each stage resumable:
#
#   bash bench/chat-models.sh [stage ...]      stages: data base (default: all, in order)
#
# R (default runs/chat-bench) gets the SYNTHETIC chat set (tools/synthetic_chat.ts) and one directory per
# model. A stage whose model is complete is skipped; an interrupted one resumes (--resume). Run it niced
# on a shared machine: nice -n 10 bash bench/chat-models.sh
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-runs/chat-bench}
mx() { node --import tsx src/cli/main.ts "$@"; }
done_() { [ -f "$1/trainer_state.json" ] && node -e 'const s=require(process.argv[1]); process.exit(s.step>=s.args.maxSteps?0:1)' "$(realpath "$1")/trainer_state.json" 2>/dev/null; }
resume_or() { if [ -f "$1/trainer_state.json" ]; then echo --resume; else echo --overwrite; fi; }

stage_data() {
  mkdir -p "$R"
  node --import tsx tools/synthetic_chat.ts --out "$R/data"
  node --import tsx --input-type=module -e \
    'import { writeFileSync } from "node:fs"; import { sotuCorpus } from "./src/data/sotu.ts"; writeFileSync(process.argv[1], sotuCorpus(1900));' \
    "$R/data/sotu-since-1900.txt"
}

# The base language model: a character-level GPT (4 layers, 128 wide, context 160) pretrained on the
# State of the Union addresses since 1900 (5.3M characters), about half an epoch.
stage_base() {
  done_ "$R/base" && return 0
  local flags=(--n-layer 4 --n-head 4 --n-embd 128 --block-size 160 --batch-size 16 --max-steps 1000
    --learning-rate 2e-3 --warmup-steps 100 --eval-interval 200 --eval-iters 10 --seed 1337)
  if [ -f "$R/base/trainer_state.json" ]; then mx train --out "$R/base" --resume --max-steps 1000
  else mx train --data "$R/data/sotu-since-1900.txt" --out "$R/base" --overwrite "${flags[@]}"; fi
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(data base)
for s in "${stages[@]}"; do
  echo "== $s ($(date -u +%H:%M:%S))" >&2
  "stage_$s"
done
