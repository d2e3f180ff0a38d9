#!/usr/bin/python3
"""PyTorch side of bench/bert.ts: BERT inference and fine-tuning speed, in sentences per second, for
the same workloads bench/bert.ts runs in moxing, in the same invocation.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 \
        /usr/bin/python3 bench/torch_bert_bench.py --threads 2 \
        --configs '[{"size":"tiny","num_hidden_layers":2,"hidden_size":128,"num_attention_heads":2,
                     "intermediate_size":512,"vocab_size":30522,"batch_size":32,"seq_len":64}]'
Prints one JSON object on its last line.

The model is tools/torch_bert.py's BertModel (Hugging Face's BertModel computed eagerly: separate
query/key/value, softmax(q k^T / sqrt(d) + mask) v, post-LN, erf GELU, tanh pooler) with a
sequence-classification head on the pooled output (BertForSequenceClassification's, 2 labels),
initialised as Hugging Face does (N(0, 0.02), zero biases, unit LayerNorms). Dropout is off on both
sides (bench/bert.ts builds moxing's model with dropout 0), so both do the same arithmetic.

  inference   model.eval(), torch.no_grad(): the classifier's logits of a (batch, seq_len) batch of
              random token ids with an all-ones attention mask
  finetune    model.train(): logits, cross-entropy against random labels, zero_grad, backward,
              clip_grad_norm_(1.0), AdamW step (lr 1e-4, eps 1e-8, weight decay 0.01 except on
              biases and LayerNorms), as moxing's fine-tuning loop does each step
Each is timed per call after warm-up calls; the median is reported.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from torch_bert import BertModel  # noqa: E402  (the parity reference's model)


class BertForSequenceClassification(nn.Module):
    def __init__(self, c, num_labels=2):
        super().__init__()
        self.bert = BertModel(c)
        self.classifier = nn.Linear(c["hidden_size"], num_labels)

    def forward(self, ids, types, mask):
        _, pooled, _ = self.bert(ids, types, mask)
        return self.classifier(pooled)


def build(cfg):
    c = dict(
        vocab_size=cfg["vocab_size"],
        hidden_size=cfg["hidden_size"],
        num_hidden_layers=cfg["num_hidden_layers"],
        num_attention_heads=cfg["num_attention_heads"],
        intermediate_size=cfg["intermediate_size"],
        max_position_embeddings=512,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    m = BertForSequenceClassification(c)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("LayerNorm.weight"):
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02)
    return m


def inputs(cfg):
    g = torch.Generator().manual_seed(1)
    B, T = cfg["batch_size"], cfg["seq_len"]
    ids = torch.randint(1, cfg["vocab_size"], (B, T), generator=g)
    types = torch.zeros((B, T), dtype=torch.long)
    mask = torch.ones((B, T), dtype=torch.long)
    labels = torch.randint(0, 2, (B,), generator=g)
    return ids, types, mask, labels


def timed(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def inference(cfg, reps, warmup):
    m = build(cfg).eval()
    ids, types, mask, _ = inputs(cfg)

    def step():
        with torch.no_grad():
            m(ids, types, mask)

    s = timed(step, reps, warmup)
    return {"ms_per_batch": s * 1e3, "sentences_per_s": cfg["batch_size"] / s}


def finetune(cfg, reps, warmup):
    m = build(cfg).train()
    ids, types, mask, labels = inputs(cfg)
    decay = [p for n, p in m.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in m.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-4,
        betas=(0.9, 0.999),
        eps=1e-8,
    )

    def step():
        loss = F.cross_entropy(m(ids, types, mask), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()

    s = timed(step, reps, warmup)
    return {"ms_per_step": s * 1e3, "sentences_per_s": cfg["batch_size"] / s}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--configs", default="[]")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "configs": []}
    for cfg in json.loads(a.configs):
        out["configs"].append(
            {
                "config": cfg,
                "inference": inference(cfg, a.reps, a.warmup),
                "finetune": finetune(cfg, a.reps, a.warmup),
            }
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
