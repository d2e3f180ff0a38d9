// Module: the base of every layer and model, as in torch.nn.Module. Parameters and submodules
// are registered by name, so a model has dotted parameter names ("transformer.h.0.attn.c_attn.weight")
// that match PyTorch's and Hugging Face's, and stateDict / loadStateDict move weights in and out.

import { noGrad } from "../tensor/autograd.js";
import { packTensors } from "../tensor/memory.js";
import { fmtShape } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";

export abstract class Module {
  /** Training mode enables dropout; eval() turns it off. */
  training = true;
  private readonly _params = new Map<string, Tensor>();
  private readonly _buffers = new Map<string, Tensor>();
  private readonly _modules = new Map<string, Module>();

  /** Register a trainable tensor under a name; returns it so constructors read `this.weight = this.param(...)`. */
  protected param(name: string, t: Tensor): Tensor {
    t.requiresGrad = true;
    t.name = name;
    this._params.set(name, t);
    return t;
  }

  /** Register a non-trainable tensor; a persistent one is saved with the model (Marian's
   *  final_logits_bias), others (sinusoid tables) are rebuilt from the config. */
  protected buffer(name: string, t: Tensor, persistent = false): Tensor {
    if (persistent) this._buffers.set(name, t);
    return t;
  }

  protected module<M extends Module>(name: string, m: M): M {
    this._modules.set(name, m);
    return m;
  }

  *namedModules(prefix = ""): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, m] of this._modules) yield* m.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  /** Every parameter with its dotted name, each tensor once (tied weights appear under their first name). */
  namedParameters(prefix = ""): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, p] of m._params) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([path ? `${path}.${name}` : name, p]);
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Move every parameter into one block of backend memory (2 MiB pages on the native backend),
   *  which speeds up reading all the weights per generated token. Models call it at the end of
   *  their constructor; returns the bytes moved (0 where the backend cannot or it is not worth it). */
  packParameters(): number {
    return packTensors(this.parameters());
  }

  /** Total number of trainable values. */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  /** Parameters and persistent buffers by dotted name (tensors shared, not copied). */
  stateDict(): Map<string, Tensor> {
    const sd = new Map<string, Tensor>(this.namedParameters());
    for (const [path, m] of this.namedModules()) {
      for (const [name, b] of m._buffers) sd.set(path ? `${path}.${name}` : name, b);
    }
    return sd;
  }

  /** Copy values into this module's tensors. strict: every name must match both ways. */
  loadStateDict(sd: Map<string, Tensor> | Record<string, Tensor>, strict = true): void {
    const src = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    if (strict) {
      const missing = [...own.keys()].filter((k) => !src.has(k));
      const unexpected = [...src.keys()].filter((k) => !own.has(k));
      if (missing.length || unexpected.length) {
        const part = (label: string, ks: string[]) =>
          ks.length ? ` ${label}: ${ks.slice(0, 5).join(", ")}${ks.length > 5 ? ` (+${ks.length - 5} more)` : ""}.` : "";
        throw new Error(`loadStateDict: the weights do not match this model.${part("missing", missing)}${part("unexpected", unexpected)}`);
      }
    }
    noGrad(() => {
      for (const [name, t] of own) {
        const v = src.get(name);
        if (!v) continue;
        if (v.shape.length !== t.shape.length || v.shape.some((d, i) => d !== t.shape[i])) {
          throw new Error(`loadStateDict: '${name}' has shape ${fmtShape(v.shape)} in the weights but ${fmtShape(t.shape)} in the model`);
        }
        t.copy_(v);
      }
    });
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }
}

/** An indexed list of submodules, named "0", "1", ... like torch.nn.ModuleList. */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => {
      this.module(String(i), m);
    });
  }
  get length(): number {
    return this.items.length;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
