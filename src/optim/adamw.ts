// AdamW (Loshchilov & Hutter 2019): Adam with weight decay decoupled from the gradient, with
// torch.optim.AdamW's exact update. Runs the backend's fused one-pass kernel when it has one.

import { recycleGrad } from "../tensor/autograd.js";
import { getBackend } from "../tensor/backend.js";
import { zerosLike } from "../tensor/creation.js";
import { persistent } from "../tensor/memory.js";
import { bumpVersion, noGrad } from "../tensor/tape.js";
import type { Tensor } from "../tensor/tensor.js";

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** A group of parameters sharing settings (e.g. GPT-2 puts biases and norms in a no-decay group). */
export interface ParamGroup extends AdamWOptions {
  params: Tensor[];
}

interface Slot {
  m: Tensor;
  v: Tensor;
}

export class AdamW {
  readonly groups: (Required<AdamWOptions> & { params: Tensor[] })[];
  /** Steps taken so far (t in the bias corrections). */
  step_ = 0;
  private readonly state = new Map<Tensor, Slot>();

  constructor(params: Tensor[] | ParamGroup[], opts: AdamWOptions = {}) {
    const defaults = { lr: 1e-3, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0.01, ...opts };
    const groups: ParamGroup[] =
      params.length && "params" in (params[0] as object) ? (params as ParamGroup[]) : [{ params: params as Tensor[] }];
    this.groups = groups.map((g) => ({ ...defaults, ...g }));
    for (const g of this.groups) {
      if (!(g.lr >= 0)) throw new Error(`AdamW: lr must be >= 0 (got ${g.lr})`);
      for (const b of g.betas) if (!(b >= 0 && b < 1)) throw new Error(`AdamW: betas must be in [0, 1) (got ${g.betas})`);
      for (const p of g.params) {
        if (p.dtype !== "float32" || !p.isContiguous())
          throw new Error(`AdamW: parameter ${p.name ?? ""} must be a contiguous float32 tensor`);
      }
    }
  }

  /** Set every group's learning rate (schedules call this before each step). */
  setLr(lr: number): void {
    for (const g of this.groups) g.lr = lr;
  }

  /** Set every parameter's .grad to null (zero_grad(set_to_none=True)). With recycle, the buffers
   *  are kept for the next backward to write into (autograd's recycleGrad): a training loop then
   *  allocates no gradient memory after its first step; the old gradients must not be used after it. */
  zeroGrad(opts: { recycle?: boolean } = {}): void {
    for (const g of this.groups) {
      for (const p of g.params) {
        if (opts.recycle) recycleGrad(p);
        else p.grad = null;
      }
    }
  }

  step(): void {
    this.step_++;
    const fused = getBackend().fused?.adamw;
    noGrad(() => {
      for (const g of this.groups) {
        const [b1, b2] = g.betas;
        const bc1 = 1 - b1 ** this.step_;
        const bc2 = 1 - b2 ** this.step_;
        for (const p of g.params) {
          if (!p.grad) continue;
          let s = this.state.get(p);
          if (!s) {
            s = persistent(() => ({ m: zerosLike(p), v: zerosLike(p) }));
            this.state.set(p, s);
          }
          const grad = p.grad.contiguousData() as Float32Array;
          if (fused) {
            fused(
              p.data as Float32Array,
              grad,
              s.m.data as Float32Array,
              s.v.data as Float32Array,
              g.lr,
              b1,
              b2,
              g.eps,
              g.weightDecay,
              bc1,
              bc2,
            );
            bumpVersion(p); // an in-place write, as copy_ is: a graph that saved p can no longer backpropagate
            continue;
          }
          // The same update in tensor ops: the specification the fused kernel must match.
          const gt = p.grad;
          p.copy_(p.mul(1 - g.lr * g.weightDecay));
          s.m.copy_(s.m.mul(b1).add(gt.mul(1 - b1)));
          s.v.copy_(s.v.mul(b2).add(gt.mul(gt).mul(1 - b2)));
          const denom = s.v.div(bc2).sqrt().add(g.eps);
          p.copy_(p.sub(s.m.div(bc1).div(denom).mul(g.lr)));
        }
      }
    });
  }

  /** Moment buffers in parameter order, for checkpoints. */
  stateDict(): { step: number; m: Float32Array[]; v: Float32Array[] } {
    const all = this.groups.flatMap((g) => g.params);
    const slot = (p: Tensor) => this.state.get(p) ?? { m: zerosLike(p), v: zerosLike(p) };
    return { step: this.step_, m: all.map((p) => slot(p).m.data as Float32Array), v: all.map((p) => slot(p).v.data as Float32Array) };
  }

  loadStateDict(sd: { step: number; m: Float32Array[]; v: Float32Array[] }): void {
    const all = this.groups.flatMap((g) => g.params);
    if (sd.m.length !== all.length || sd.v.length !== all.length) {
      throw new Error(`AdamW.loadStateDict: state has ${sd.m.length} slots but the optimizer has ${all.length} parameters`);
    }
    this.step_ = sd.step;
    all.forEach((p, i) => {
      const m = sd.m[i] as Float32Array;
      const v = sd.v[i] as Float32Array;
      if (m.length !== p.size || v.length !== p.size)
        throw new Error(`AdamW.loadStateDict: slot ${i} has ${m.length} values for a parameter of ${p.size}`);
      const s = persistent(() => ({ m: zerosLike(p), v: zerosLike(p) }));
      s.m.data.set(m);
      s.v.data.set(v);
      this.state.set(p, s);
    });
  }
}
