#!/usr/bin/python3
"""PyTorch reference for moxing's GPT: the same model, data split, sampler and optimiser settings,
so validation loss and speed can be compared side by side (bench/gpt.ts runs it).

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_gpt.py --data FILE
Needs Debian's python3-torch. Prints one JSON object on its last line.

The model follows nanoGPT's model.py: learned positions, pre-LN blocks, GELU (tanh), tied head,
GPT-2 init with scaled residual projections. Training follows nanoGPT's train.py: AdamW with
betas (0.9, 0.99) and weight decay on 2-D weights only, linear warmup then cosine decay to lr/10,
gradient clipping at 1.0, random (B, T) windows of the first 90% of the characters.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, nh, bias=True):
        super().__init__()
        self.nh = nh
        self.ln_1 = nn.LayerNorm(C, elementwise_affine=True)
        self.c_attn = nn.Linear(C, 3 * C, bias=bias)
        self.attn_proj = nn.Linear(C, C, bias=bias)
        self.ln_2 = nn.LayerNorm(C)
        self.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.mlp_proj = nn.Linear(4 * C, C, bias=bias)

    def attn(self, x, cache=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.nh, C // self.nh).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.nh, C // self.nh).transpose(1, 2)
        v = v.view(B, T, self.nh, C // self.nh).transpose(1, 2)
        start = 0
        if cache is not None:
            if cache.get("k") is not None:
                start = cache["k"].shape[2]
                k = torch.cat([cache["k"], k], 2)
                v = torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        S = k.shape[2]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        mask = torch.arange(S).view(1, S) > (torch.arange(T).view(T, 1) + start)
        att = att.masked_fill(mask, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.attn_proj(y)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, n_layer, n_head, n_embd, block_size):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("attn_proj.weight") or name.endswith("mlp_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets=None, caches=None, start=0):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(start, start + T))
        for i, b in enumerate(self.h):
            x = b(x, None if caches is None else caches[i])
        x = self.ln_f(x)
        logits = x @ self.wte.weight.t()
        loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


def bench_training(cfg):
    """The benchmarks' training workload (bench/torch_bench.py times it, bench/torch_memory.py
    measures its memory): the model and one step of forward, backward, clipping at 1.0 and AdamW
    on a fixed random batch, as bench/workloads.ts does in moxing."""
    torch.manual_seed(0)
    m = GPT(cfg["vocab_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["block_size"])
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    x = torch.randint(cfg["vocab_size"], (cfg["batch_size"], cfg["block_size"]))
    y = torch.randint(cfg["vocab_size"], (cfg["batch_size"], cfg["block_size"]))

    def step():
        _, loss = m(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()

    return m, step


def bench_generation(cfg):
    """The benchmarks' generation workload: the model and a function generating n tokens, batch 1,
    greedy, with the KV cache, after the first token (bench/bench.ts and bench/memory.ts run the
    same in moxing)."""
    torch.manual_seed(0)
    m = GPT(cfg["vocab_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["block_size"]).eval()

    def generate(n):
        with torch.no_grad():
            caches = [{} for _ in m.h]
            idx = torch.zeros((1, 1), dtype=torch.long)
            for i in range(n):
                logits, _ = m(idx[:, -1:], caches=caches, start=i)
                idx = torch.cat([idx, torch.argmax(logits[:, -1, :], -1, keepdim=True)], 1)
        return idx

    return m, generate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--max-steps", type=int, default=2000)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--warmup-steps", type=int, default=100)
    ap.add_argument("--eval-iters", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--gen-tokens", type=int, default=0, help="also time generation of this many tokens with a KV cache")
    ap.add_argument("--seed", type=int, default=1337)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    text = open(a.data, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    train, val = data[:n], data[n:]
    model = GPT(len(chars), a.n_layer, a.n_head, a.n_embd, a.block_size)
    decay = [p for p in model.parameters() if p.dim() >= 2 and p is not model.wte.weight and p is not model.wpe.weight]
    no_decay = [p for p in model.parameters() if not any(p is q for q in decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.learning_rate, betas=(0.9, 0.99))
    B, T = a.batch_size, a.block_size

    def batch(split):
        d = train if split == "train" else val
        ix = torch.randint(len(d) - T - 1, (B,))
        return torch.stack([d[i:i + T] for i in ix]), torch.stack([d[i + 1:i + 1 + T] for i in ix])

    def lr_at(it):
        if it < a.warmup_steps:
            return a.learning_rate * (it + 1) / (a.warmup_steps + 1)
        r = (it - a.warmup_steps) / max(1, a.max_steps - a.warmup_steps)
        return a.learning_rate / 10 + 0.5 * (1 + math.cos(math.pi * min(1.0, r))) * (a.learning_rate - a.learning_rate / 10)

    times = []
    for it in range(a.max_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        x, y = batch("train")
        t0 = time.perf_counter()
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)

    model.eval()
    with torch.no_grad():
        losses = {s: sum(model(*batch(s))[1].item() for _ in range(a.eval_iters)) / a.eval_iters for s in ("train", "val")}
    steady = sorted(times[min(5, len(times) - 1):])
    med = steady[len(steady) // 2]
    out = {"train_loss": losses["train"], "val_loss": losses["val"], "ms_per_step": med * 1e3,
           "train_tokens_per_s": B * T / med, "threads": torch.get_num_threads(), "torch": torch.__version__}
    if a.gen_tokens:
        with torch.no_grad():
            caches = [{} for _ in model.h]
            idx = torch.zeros((1, 1), dtype=torch.long)
            n_new = min(a.gen_tokens, a.block_size - 1)
            t0 = time.perf_counter()
            for i in range(n_new):
                logits, _ = model(idx[:, -1:], caches=caches, start=i)
                nxt = torch.argmax(logits[:, -1, :], dim=-1, keepdim=True)
                idx = torch.cat([idx, nxt], 1)
            out["gen_tokens_per_s"] = n_new / (time.perf_counter() - t0)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
