// The SYNTHETIC chat set's programmatic judge as a reward function, for `moxing grpo` / `moxing ppo
// --reward-function bench/chat-judge.ts` (run under tsx) and the benchmarks: 1 for a right answer,
// else how close it comes (judgeAnswer's score, below 1), from the dataset line's task, prompt and
// reference answer.

import { chatExampleOf, judgeAnswer } from "../src/data/chat.js";
import type { RewardSample } from "../src/rlhf/rollout.js";

export default function judgeReward(s: RewardSample): number {
  return judgeAnswer(chatExampleOf(s.fields), s.completion).score;
}
