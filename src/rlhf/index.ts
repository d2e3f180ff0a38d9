// Learning from feedback: TRL's dataset formats, the losses of SFT, reward modelling, DPO, PPO and
// GRPO, the trainers on the one training loop, rollouts, and learning from a conversation now.
export * from "./common.js";
export * from "./datasets.js";
export * from "./dpo.js";
export * from "./grpo.js";
export * from "./learn.js";
export * from "./losses.js";
export * from "./online.js";
export * from "./ppo.js";
export * from "./reward.js";
export * from "./rollout.js";
export * from "./sft.js";
