// LoRA: low-rank adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models").
//
// A chosen Linear layer y = x·Wᵀ + b keeps W frozen and learns a low-rank update instead:
//     y = x·Wᵀ + b + (α/r) · B(A(dropout(x)))      A: (r, in_features), B: (out_features, r)
// A starts as a Linear layer's usual uniform init and B at zero, so training starts from the base
// model exactly; only A and B (r·(in+out) numbers per layer) get gradients and optimizer state.
//
// The names and numbers are PEFT's (LoraConfig: r, lora_alpha, lora_dropout, target_modules, with
// use_rslora's α/√r scaling as an option), and LoraModel's parameters are named as PEFT saves them:
// "base_model.model.<layer path>.lora_A.weight", so src/io/lora.ts writes and reads PEFT's
// adapter_model.safetensors directly. A target name matches a Linear layer whose path is that name or
// ends with "." + name, as in PEFT: "c_proj" is both attn.c_proj and mlp.c_proj of every GPT-2 block.
//
// The adapters hang on the layers (Linear.adapter) without becoming submodules of the base model, so
// its parameters, names and saved files stay the base's. disableAdapters() turns them off (the base
// model's outputs, e.g. DPO's frozen reference, with no second copy of the weights); merge() folds
// them into the base weights (PEFT's merge_and_unload).

import { noGrad } from "../tensor/autograd.js";
import { dropout, matmul, mul } from "../tensor/ops.js";
import { Generator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { Linear, type LinearAdapter } from "./layers.js";
import { Module } from "./module.js";
import { QLinear } from "./quantized.js";

/** A layer LoRA adapts: Linear, or QLinear (the Llama family's projections, float32 or quantised). */
type Adaptable = Linear | QLinear;
const isAdaptable = (m: Module): m is Adaptable => m instanceof Linear || m instanceof QLinear;

export interface LoraConfig {
  /** Rank of the update. */
  r: number;
  /** Scale: the update is multiplied by alpha / r (alpha / √r with useRslora). */
  alpha: number;
  /** Dropout on the adapter's input (training only). */
  dropout: number;
  /** Names of the Linear layers to adapt, e.g. ["c_attn", "c_proj"]. */
  targetModules: string[];
  /** Rank-stabilised scaling α/√r (Kalajdzievski 2023), PEFT's use_rslora. */
  useRslora?: boolean;
}

/** The prefix PEFT's saved tensor names carry: PeftModel.base_model (LoraModel) .model (the base). */
export const PEFT_PREFIX = "base_model.model.";

/** Check a LoRA config; errors name the field. */
export function validateLoraConfig(c: LoraConfig): void {
  if (!Number.isInteger(c.r) || c.r < 1) throw new Error(`LoRA: r must be a positive integer (got ${c.r})`);
  if (!(Number.isFinite(c.alpha) && c.alpha > 0)) throw new Error(`LoRA: alpha must be a positive number (got ${c.alpha})`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new Error(`LoRA: dropout must be in [0, 1) (got ${c.dropout})`);
  if (!Array.isArray(c.targetModules) || c.targetModules.length === 0 || c.targetModules.some((t) => typeof t !== "string" || !t)) {
    throw new Error("LoRA: targetModules must name at least one Linear layer (e.g. c_attn,c_proj)");
  }
}

/** The update for one layer: scaling · B(A(dropout(x))). */
export class LoraAdapter extends Module implements LinearAdapter {
  readonly lora_A: Linear;
  readonly lora_B: Linear;

  constructor(
    readonly owner: LoraModel,
    layer: Adaptable,
    readonly scaling: number,
    readonly dropoutP: number,
    private readonly generator: Generator,
  ) {
    super();
    const { r } = owner.config;
    // Linear's init for A is PEFT's kaiming_uniform_(a=√5): U(-1/√in, 1/√in); B starts at zero.
    this.lora_A = this.module("lora_A", new Linear(layer.inFeatures, r, { bias: false, generator }));
    this.lora_B = this.module("lora_B", new Linear(r, layer.outFeatures, { bias: false, generator }));
    noGrad(() => this.lora_B.weight.zero_());
  }

  get enabled(): boolean {
    return !this.owner.adaptersDisabled;
  }

  forward(x: Tensor): Tensor {
    const h = dropout(x, this.dropoutP, this.training, this.generator); // (..., in)
    return mul(this.lora_B.forward(this.lora_A.forward(h)), this.scaling); // (..., r) -> (..., out)
  }

  /** The dense update scaling · B·A, (out, in) like the layer's weight. */
  deltaWeight(): Tensor {
    return noGrad(() => mul(matmul(this.lora_B.weight, this.lora_A.weight), this.scaling));
  }
}

/**
 * Adapters on a base model. Its parameters are the adapters' only, under PEFT's names; the base's
 * parameters are frozen (requiresGrad false) while the adapters are attached.
 */
export class LoraModel extends Module {
  readonly config: Required<LoraConfig>;
  readonly scaling: number;
  /** Layer path in the base model (e.g. "transformer.h.0.attn.c_attn") -> its adapter. */
  readonly adapters = new Map<string, LoraAdapter>();
  adaptersDisabled = false;
  private readonly layers = new Map<string, Adaptable>();
  private readonly wasTrainable = new Map<Tensor, boolean>();
  private attached = true;

  constructor(
    readonly base: Module,
    config: LoraConfig,
    opts: { seed?: number; generator?: Generator } = {},
  ) {
    super();
    validateLoraConfig(config);
    this.config = { useRslora: false, ...config, targetModules: [...config.targetModules] };
    const { r, alpha, useRslora } = this.config;
    this.scaling = useRslora ? alpha / Math.sqrt(r) : alpha / r;
    const g = opts.generator ?? new Generator(opts.seed ?? 0);

    const linears = [...base.namedModules()].filter((e): e is [string, Adaptable] => isAdaptable(e[1]));
    const matches = (path: string) => this.config.targetModules.some((t) => path === t || path.endsWith(`.${t}`));
    for (const target of this.config.targetModules) {
      const hit = [...base.namedModules()].filter(([path]) => path === target || path.endsWith(`.${target}`));
      if (hit.length === 0) {
        const names = [...new Set(linears.map(([p]) => p.split(".").pop()))].join(", ");
        throw new Error(`LoRA: target module '${target}' is not in the model; its Linear layers are named ${names}`);
      }
      const notLinear = hit.find(([, m]) => !isAdaptable(m));
      if (notLinear)
        throw new Error(`LoRA: target module '${notLinear[0]}' is a ${notLinear[1].constructor.name}; LoRA adapts Linear layers only`);
    }
    for (const p of base.parameters()) {
      this.wasTrainable.set(p, p.requiresGrad);
      p.requiresGrad = false;
    }
    for (const [path, layer] of linears) {
      if (!matches(path)) continue;
      if (layer.adapter) throw new Error(`LoRA: layer '${path}' already has an adapter; unload or merge the other LoraModel first`);
      const adapter = new LoraAdapter(this, layer, this.scaling, this.config.dropout, g);
      this.module(`${PEFT_PREFIX}${path}`, adapter);
      this.adapters.set(path, adapter);
      this.layers.set(path, layer);
      layer.adapter = adapter;
    }
    this.train(base.training);
  }

  /** Training mode reaches the base model too (its dropout), as it would in one module tree. */
  override train(mode = true): this {
    super.train(mode);
    this.base.train(mode);
    return this;
  }

  disableAdapters(): void {
    this.adaptersDisabled = true;
  }

  enableAdapters(): void {
    this.adaptersDisabled = false;
  }

  /** Run `fn` on the base model alone (PEFT's disable_adapter() context). */
  withAdaptersDisabled<T>(fn: () => T): T {
    const was = this.adaptersDisabled;
    this.adaptersDisabled = true;
    try {
      return fn();
    } finally {
      this.adaptersDisabled = was;
    }
  }

  /** Trainable (adapter) and total (base + adapter) parameter counts, as PEFT prints them. */
  trainableParameters(): { trainable: number; total: number; percent: number } {
    const trainable = this.numParameters();
    const total = this.base.numParameters() + trainable;
    return { trainable, total, percent: (100 * trainable) / total };
  }

  /** Fold every adapter into its layer's weight (W += scaling·B·A), detach them, and return the base.
   *  Quantised weights cannot take the update: merge onto the float32 model instead. */
  merge(): Module {
    this.checkAttached("merge");
    const quantized = [...this.layers].find(([, l]) => l instanceof QLinear && l.quantized);
    if (quantized) {
      throw new Error(
        `LoRA: merge: '${quantized[0]}' has quantised weights, which cannot take the update; merge the adapters into the float32 (or F16/BF16) model they were trained for, then quantise`,
      );
    }
    noGrad(() => {
      for (const [path, adapter] of this.adapters) {
        const w = (this.layers.get(path) as Adaptable).weight as Tensor;
        w.copy_(w.add(adapter.deltaWeight()));
      }
    });
    return this.unload();
  }

  /** Detach the adapters without merging; the base model is as it was, trainable again. */
  unload(): Module {
    this.checkAttached("unload");
    for (const layer of this.layers.values()) layer.adapter = null;
    for (const [p, was] of this.wasTrainable) p.requiresGrad = was;
    this.attached = false;
    return this.base;
  }

  private checkAttached(what: string): void {
    if (!this.attached) throw new Error(`LoRA: ${what}: the adapters were already merged or unloaded`);
  }
}
