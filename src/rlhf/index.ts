// Learning from feedback: TRL's dataset formats and the losses of SFT, reward modelling, DPO, PPO and GRPO.
export * from "./datasets.js";
export * from "./losses.js";
