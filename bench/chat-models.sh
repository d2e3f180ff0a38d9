#!/usr/bin/env bash
# The models behind BENCHMARKS.md's chat / RLHF figures, trained reproducibly, each stage resumable:
#
#   bash bench/chat-models.sh [stage ...]      stages: data base sft reward dpo ppo grpo (default: all, in order)
#
# R (default runs/chat-bench) gets the SYNTHETIC chat set (tools/synthetic_chat.ts) and one directory per
# model. A stage whose model is complete is skipped; an interrupted one resumes (--resume). Run it niced
# on a shared machine: nice -n 10 bash bench/chat-models.sh
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-runs/chat-bench}
mx() { node --import tsx src/cli/main.ts "$@"; }
done_() { [ -f "$1/trainer_state.json" ] && node -e 'const s=require(process.argv[1]); process.exit(s.step>=s.args.maxSteps?0:1)' "$(realpath "$1")/trainer_state.json" 2>/dev/null; }
# QUICK=1: every stage two steps long (to check the commands, not to measure anything). A stage's step
# count can be set with an environment variable: BASE_STEPS, SFT_STEPS, REWARD_STEPS, DPO_STEPS,
# PPO_STEPS, GRPO_STEPS (the defaults below otherwise); its evaluations then come every quarter of it.
steps() { if [ "${QUICK:-}" = 1 ]; then echo 2; else echo "$1"; fi; }
quarter() { local q=$(( $1 / 4 )); [ "$q" -lt 1 ] && q=1; echo "$q"; }
# Train with `moxing CMD FLAGS...` into DIR, or resume it there; skip it when complete.
run() {
  local cmd=$1 dir=$2 max=$3; shift 3
  done_ "$dir" && return 0
  if [ -f "$dir/trainer_state.json" ]; then mx "$cmd" --out "$dir" --resume --max-steps "$max"
  else mx "$cmd" --out "$dir" --overwrite --max-steps "$max" "$@"; fi
}

stage_data() {
  mkdir -p "$R"
  node --import tsx tools/synthetic_chat.ts --out "$R/data"
  node --import tsx --input-type=module -e \
    'import { writeFileSync } from "node:fs"; import { sotuCorpus } from "./src/data/sotu.ts"; writeFileSync(process.argv[1], sotuCorpus(1900));' \
    "$R/data/sotu-since-1900.txt"
  # Held-out subsets evaluated during training: the 60 prompts bench/chat.ts asks (10 of each task; for
  # PPO and GRPO their prompts, the reference answer a field the judge reads) and 100 preference pairs.
  node --input-type=module -e '
    import { readFileSync, writeFileSync } from "node:fs";
    const [dir] = process.argv.slice(1);
    const rows = readFileSync(`${dir}/sft-test.jsonl`, "utf8").trim().split("\n");
    const per = {}; const eval_ = rows.filter((l) => { const t = JSON.parse(l).task; per[t] = (per[t] ?? 0) + 1; return per[t] <= 10; });
    writeFileSync(`${dir}/sft-eval.jsonl`, eval_.join("\n") + "\n");
    writeFileSync(`${dir}/preference-eval.jsonl`, readFileSync(`${dir}/preference-test.jsonl`, "utf8").trim().split("\n").slice(0, 100).join("\n") + "\n");
  ' "$R/data"
}

# The base language model: a character-level GPT (4 layers, 128 wide, context 160) pretrained on the
# State of the Union addresses since 1900 (5.3M characters), about half an epoch.
stage_base() {
  local n; n=$(steps "${BASE_STEPS:-1000}")
  run train "$R/base" "$n" --data "$R/data/sotu-since-1900.txt" --n-layer 4 --n-head 4 --n-embd 128 --block-size 160 \
    --batch-size 16 --learning-rate 2e-3 --warmup-steps 100 --eval-interval "$(quarter "$n")" --eval-iters 10 --seed 1337
}

# SFT: the base learns the chat template, to stop at <|im_end|>, and the tasks (full fine-tuning; the
# base gets ChatML's two tokens).
stage_sft() {
  local n; n=$(steps "${SFT_STEPS:-600}")
  run sft "$R/sft" "$n" --model "$R/base" --data "$R/data/sft-train.jsonl" --eval "$R/data/sft-eval.jsonl" \
    --batch-size 16 --learning-rate 1e-3 --min-lr 1e-4 --warmup-steps 20 --eval-interval "$(quarter "$n")" --checkpoint-interval 100 --seed 1
}

# The reward model: the SFT model's trunk with a scalar head, Bradley-Terry on the preference pairs;
# evaluated once at the end on all 412 held-out pairs.
stage_reward() {
  local n; n=$(steps "${REWARD_STEPS:-300}")
  run reward "$R/reward" "$n" --model "$R/sft" --data "$R/data/preference-train.jsonl" --eval "$R/data/preference-test.jsonl" \
    --batch-size 8 --learning-rate 3e-4 --min-lr 3e-5 --warmup-steps 20 --eval-interval "$n" --checkpoint-interval 100 --seed 1
}

# DPO from the SFT model against its frozen copy.
stage_dpo() {
  local n; n=$(steps "${DPO_STEPS:-200}")
  run dpo "$R/dpo" "$n" --model "$R/sft" --data "$R/data/preference-train.jsonl" --eval "$R/data/preference-eval.jsonl" \
    --beta 0.1 --batch-size 8 --learning-rate 1e-4 --min-lr 1e-5 --warmup-steps 10 --eval-interval "$(quarter "$n")" --checkpoint-interval 50 --seed 1
}

# PPO from the SFT model, rewarded by the reward model (the seed's RLHF), KL penalty to the SFT model.
stage_ppo() {
  local n; n=$(steps "${PPO_STEPS:-200}")
  run ppo "$R/ppo" "$n" --model "$R/sft" --data "$R/data/sft-train.jsonl" --eval "$R/data/sft-eval.jsonl" \
    --reward-model "$R/reward" --max-new-tokens 72 --batch-size 8 --mini-batch-size 8 --ppo-epochs 2 --kl-coef 0.05 \
    --learning-rate 1e-4 --min-lr 1e-5 --warmup-steps 10 --eval-interval "$(quarter "$n")" --checkpoint-interval 50 --seed 1
}

# GRPO from the SFT model, rewarded by the programmatic judge (a TypeScript reward function).
stage_grpo() {
  local n; n=$(steps "${GRPO_STEPS:-150}")
  run grpo "$R/grpo" "$n" --model "$R/sft" --data "$R/data/sft-train.jsonl" --eval "$R/data/sft-eval.jsonl" \
    --reward-function bench/chat-judge.ts --num-generations 4 --batch-size 4 --beta 0.04 --max-new-tokens 72 \
    --learning-rate 1e-4 --min-lr 1e-5 --warmup-steps 10 --eval-interval "$(quarter "$n")" --checkpoint-interval 50 --seed 1
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(data base sft reward dpo ppo grpo)
for s in "${stages[@]}"; do
  echo "== $s ($(date -u +%H:%M:%S))" >&2
  "stage_$s"
done
