#!/usr/bin/python3
"""PyTorch peer of moxing's Marian trainer: torch.nn.Transformer of the same size, on the same token
ids, with the same loss and optimiser settings (bench/seq2seq.ts drives it).

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=2 \
        /usr/bin/python3 bench/torch_seq2seq.py serve --data ids.json --threads 2
      env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=2 \
        /usr/bin/python3 bench/torch_seq2seq.py train --data ids.json --steps N --out result.json --threads 2
Needs Debian's python3-torch (1.13).

ids.json (written by bench/seq2seq.ts) holds the model config (MarianConfig keys), the token ids of
the training pairs ({"src": [...], "tgt": [...]}, each ending with </s>), and for `train` the held-out
sources to translate; moxing's tokenizer made the ids, so both sides see exactly the same tokens.

The model is moxing's Marian (src/models/marian.ts), written with torch.nn.Transformer: one shared
embedding table scaled by sqrt(d_model), Marian's sinusoid table (sin in the first half of the
columns, cos in the second), dropout 0.1, post-LN layers (norm_first False) with SiLU (Marian's
"swish") feed-forward, no extra final LayerNorm after the encoder and decoder stacks (Marian has
none, so the stacks are passed to nn.Transformer as custom_encoder / custom_decoder with norm=None),
an output head tied to the embedding plus final_logits_bias, weights N(0, 0.02) with zero biases and
padding row. Training: label-smoothed (0.1) cross-entropy over the target tokens, AdamW (0.9, 0.98),
eps 1e-9, weight decay 0.01 on Linear weights, global gradient clipping at 1.0, linear warmup then
cosine decay to lr/10 (nanoGPT's get_lr, as moxing's loop), batches padded to the longest row rounded
up to a multiple of 8.

serve: reads one command per line on stdin and answers one JSON line on stdout:
  {"steps": [[i, ...], ...]}   one training step per list of example indices; answers the wall and
                               CPU milliseconds of each step
  {"quit": true}
train: trains for --steps steps on batches of --batch-size from its own seeded shuffled epochs (the
procedure of moxing's trainer), then decodes the held-out sources greedily and writes the ids.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def sinusoids(n_pos, dim):
    """Marian's (XLM's) table: sin(pos / 10000^(2i/d)) in column i, cos in column d/2 + i."""
    half = dim // 2
    pos = torch.arange(n_pos, dtype=torch.float64).unsqueeze(1)
    inv = 10000 ** (2 * torch.arange(half, dtype=torch.float64) / dim)
    ang = pos / inv
    return torch.cat([torch.sin(ang), torch.cos(ang)], 1).float()


class TorchMarian(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d = c["d_model"]
        self.shared = nn.Embedding(c["vocab_size"], d)
        self.register_buffer("positions", sinusoids(c["max_position_embeddings"], d), persistent=False)

        def enc_layer():
            return nn.TransformerEncoderLayer(d, c["encoder_attention_heads"], c["encoder_ffn_dim"], c["dropout"], F.silu, batch_first=True)

        def dec_layer():
            return nn.TransformerDecoderLayer(d, c["decoder_attention_heads"], c["decoder_ffn_dim"], c["dropout"], F.silu, batch_first=True)

        # Marian has no LayerNorm after the stacks: norm=None (nn.Transformer's default adds one).
        encoder = nn.TransformerEncoder(enc_layer(), c["encoder_layers"], norm=None, enable_nested_tensor=False)
        decoder = nn.TransformerDecoder(dec_layer(), c["decoder_layers"], norm=None)
        self.transformer = nn.Transformer(d, batch_first=True, custom_encoder=encoder, custom_decoder=decoder)
        self.final_logits_bias = nn.Parameter(torch.zeros(c["vocab_size"]), requires_grad=False)
        self.scale = math.sqrt(d) if c["scale_embedding"] else 1.0
        self.drop = nn.Dropout(c["dropout"])
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
                elif "norm" in name:
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, c["init_std"])
            self.shared.weight[c["pad_token_id"]].zero_()

    def embed(self, ids):
        T = ids.shape[1]
        return self.drop(self.shared(ids) * self.scale + self.positions[:T])

    def encode(self, src, src_pad):
        return self.transformer.encoder(self.embed(src), src_key_padding_mask=src_pad)

    def decode(self, dec, memory, src_pad):
        T = dec.shape[1]
        causal = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
        h = self.transformer.decoder(self.embed(dec), memory, tgt_mask=causal, memory_key_padding_mask=src_pad)
        return F.linear(h, self.shared.weight, self.final_logits_bias)  # (B, T, V)

    def forward(self, src, src_pad, dec):
        return self.decode(dec, self.encode(src, src_pad), src_pad)


def round8(n):
    return (n + 7) // 8 * 8


def collate(rows, pad, start, max_len):
    """Sources padded (B, S) with their padding mask, decoder inputs and labels (-100 at padding)."""
    B = len(rows)
    S = min(round8(max(len(r["src"]) for r in rows)), max_len)
    T = min(round8(max(len(r["tgt"]) for r in rows)), max_len)
    src = torch.full((B, S), pad, dtype=torch.long)
    labels = torch.full((B, T), -100, dtype=torch.long)
    for b, r in enumerate(rows):
        src[b, : len(r["src"])] = torch.tensor(r["src"][:S])
        labels[b, : len(r["tgt"])] = torch.tensor(r["tgt"][:T])
    dec = torch.full((B, T), pad, dtype=torch.long)  # shift right: start token, labels, -100 read as pad
    dec[:, 0] = start
    dec[:, 1:] = labels[:, :-1].masked_fill(labels[:, :-1] == -100, pad)
    tokens = sum(min(len(r["tgt"]), T) for r in rows)
    return src, src == pad, dec, labels, tokens


def get_lr(it, lr, min_lr, warmup, decay):
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it >= decay:
        return min_lr
    ratio = (it - warmup) / (decay - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (lr - min_lr)


class Trainer:
    def __init__(self, cfg, args):
        torch.manual_seed(args.seed)
        self.cfg = cfg
        self.model = TorchMarian(cfg)
        decay = [p for n, p in self.model.named_parameters() if p.requires_grad and p.dim() == 2 and "shared" not in n]
        no_decay = [p for n, p in self.model.named_parameters() if p.requires_grad and not (p.dim() == 2 and "shared" not in n)]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=args.lr,
            betas=(0.9, 0.98),
            eps=1e-9,
        )
        self.args = args
        self.it = 0
        self.model.train()

    def step(self, rows):
        a, c = self.args, self.cfg
        lr = get_lr(self.it, a.lr, a.lr / 10, a.warmup, a.steps)
        for g in self.opt.param_groups:
            g["lr"] = lr
        src, src_pad, dec, labels, tokens = collate(rows, c["pad_token_id"], c["decoder_start_token_id"], a.max_length)
        logits = self.model(src, src_pad, dec)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, label_smoothing=a.label_smoothing)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), a.grad_clip)
        self.opt.step()
        self.it += 1
        return loss.item(), float(norm), tokens

    @torch.no_grad()
    def greedy(self, sources, batch_size=64):
        """Greedy decoding as moxing's generateSeq2Seq with numBeams 1: start from the pad id, never
        emit pad (bad_words_ids [[pad]]), eos forced at the last position, stop when all rows ended."""
        c, a = self.cfg, self.args
        pad, eos = c["pad_token_id"], c["eos_token_id"]
        self.model.eval()
        out = []
        for i in range(0, len(sources), batch_size):
            rows = [s[: a.max_length] for s in sources[i : i + batch_size]]
            B = len(rows)
            S = max(len(r) for r in rows)
            src = torch.full((B, S), pad, dtype=torch.long)
            for b, r in enumerate(rows):
                src[b, : len(r)] = torch.tensor(r)
            src_pad = src == pad
            memory = self.model.encode(src, src_pad)
            dec = torch.full((B, 1), c["decoder_start_token_id"], dtype=torch.long)
            done = torch.zeros(B, dtype=torch.bool)
            for t in range(1, a.max_length):
                logits = self.model.decode(dec, memory, src_pad)[:, -1]
                logits[:, pad] = float("-inf")
                if t == a.max_length - 1:
                    logits[:] = float("-inf")
                    logits[:, eos] = 0
                nxt = logits.argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
                dec = torch.cat([dec, nxt[:, None]], 1)
                done |= nxt == eos
                if bool(done.all()):
                    break
            for b in range(B):
                ids = dec[b, 1:].tolist()
                out.append(ids[: ids.index(eos)] if eos in ids else ids)
        self.model.train()
        return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["serve", "train"])
    p.add_argument("--data", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bucket", type=int, default=0, help="sort pools of this many batches by length (0: plain shuffle)")
    p.add_argument("--out")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with open(a.data) as f:
        data = json.load(f)
    cfg = data["config"]
    tr = Trainer(cfg, a)
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "params": sum(p.numel() for p in tr.model.parameters() if p.requires_grad)}
    examples = data["train"]
    if a.mode == "serve":
        print(json.dumps({"ready": True, **info}), flush=True)
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd.get("quit"):
                break
            res = []
            for idx in cmd["steps"]:
                t0, c0 = time.perf_counter(), time.process_time()
                loss, _, tokens = tr.step([examples[i] for i in idx])
                res.append({"ms": (time.perf_counter() - t0) * 1e3, "cpu_ms": (time.process_time() - c0) * 1e3, "loss": loss, "tokens": tokens})
            print(json.dumps({"steps": res}), flush=True)
        return
    # train: seeded shuffled epochs (optionally length-bucketed), as moxing's trainer makes them
    g = torch.Generator().manual_seed(a.seed + 1)
    order, cursor, log = [], 0, []
    t_start = time.perf_counter()
    c_start = time.process_time()
    lens = [len(e["src"]) + len(e["tgt"]) for e in examples]
    while tr.it < a.steps:
        if cursor >= len(order):
            perm = torch.randperm(len(examples), generator=g).tolist()
            if a.bucket > 0:
                pool = a.bucket * a.batch_size
                batches = []
                for s in range(0, len(perm), pool):
                    chunk = sorted(perm[s : s + pool], key=lambda i: lens[i])
                    batches += [chunk[j : j + a.batch_size] for j in range(0, len(chunk), a.batch_size)]
                bperm = torch.randperm(len(batches), generator=g).tolist()
                perm = [i for b in bperm for i in batches[b]]
            order, cursor = perm, 0
        idx = order[cursor : cursor + a.batch_size]
        cursor += len(idx)
        t0 = time.perf_counter()
        loss, norm, tokens = tr.step([examples[i] for i in idx])
        log.append({"step": tr.it, "train_loss": loss, "grad_norm": norm, "ms": (time.perf_counter() - t0) * 1e3})
        if tr.it % 100 == 0:
            print(json.dumps(log[-1]), file=sys.stderr, flush=True)
    train_s = time.perf_counter() - t_start
    train_cpu_s = time.process_time() - c_start
    hyps = {name: tr.greedy(srcs) for name, srcs in data.get("translate", {}).items()}
    result = {**info, "steps": tr.it, "train_s": train_s, "train_cpu_s": train_cpu_s, "log": log, "hypotheses": hyps}
    with open(a.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
