#!/usr/bin/python3
"""PyTorch side of bench/chat-speed.ts: SFT and DPO training steps of the same GPT on the same batches,
written as TRL computes them (SFT: cross-entropy on completion tokens only, labels -100 elsewhere; DPO:
summed completion log-probs of policy and frozen reference, loss -log sigmoid(beta * h)), each step
forward, backward, gradient clipping at 1.0 and AdamW, as moxing's loop takes it.

A long-lived worker, so the benchmark can alternate turns with moxing in one run:
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/torch_chat.py SPEC.json
reads the model config and the batches from SPEC.json, prints {"ready": true}, then for each line
{"op": "sft"|"dpo", "steps": N} on stdin runs N steps and prints {"seconds": [...], "tokens": T}.
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from torch_gpt import GPT  # noqa: E402  (nanoGPT's model, the one the other speed benchmarks use)


def pad(rows, value=0):
    T = max(len(r) for r in rows)
    return [r + [value] * (T - len(r)) for r in rows]


def labels_of(ids, mask):
    # position t scores token t + 1; tokens outside the completion are ignored (-100)
    return [[ids_r[t + 1] if m_r[t + 1] else -100 for t in range(len(ids_r) - 1)] for ids_r, m_r in zip(ids, mask)]


def main():
    spec = json.load(open(sys.argv[1]))
    threads = int(spec.get("threads", 2))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c = spec["config"]
    policy = GPT(c["vocab_size"], c["n_layer"], c["n_head"], c["n_embd"], c["block_size"])
    reference = GPT(c["vocab_size"], c["n_layer"], c["n_head"], c["n_embd"], c["block_size"])
    reference.load_state_dict(policy.state_dict())
    reference.requires_grad_(False).eval()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=0.0)

    sft_ids = pad(spec["sft"]["ids"])
    sft_x = torch.tensor(sft_ids)
    sft_y = torch.tensor(labels_of(sft_ids, pad(spec["sft"]["mask"])))
    sft_tokens = sum(len(r) for r in spec["sft"]["ids"])

    dpo_ids = pad(spec["dpo"]["ids"])  # chosen rows, then rejected rows
    dpo_x = torch.tensor(dpo_ids)
    dpo_y = torch.tensor(labels_of(dpo_ids, pad(spec["dpo"]["mask"])))
    dpo_tokens = sum(len(r) for r in spec["dpo"]["ids"])
    n_pairs = len(dpo_ids) // 2
    beta = 0.1

    def seq_logps(model, x, y):
        logits, _ = model(x)
        logits = logits[:, :-1, :]
        lp = -F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100, reduction="none")
        return lp.view(y.shape).sum(-1)

    def sft_step():
        logits, _ = policy(sft_x)
        loss = F.cross_entropy(logits[:, :-1, :].reshape(-1, logits.size(-1)), sft_y.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()

    def dpo_step():
        pol = seq_logps(policy, dpo_x, dpo_y)
        with torch.no_grad():
            ref = seq_logps(reference, dpo_x, dpo_y)
        h = (pol[:n_pairs] - pol[n_pairs:]) - (ref[:n_pairs] - ref[n_pairs:])
        loss = -F.logsigmoid(beta * h).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()

    steps = {"sft": (sft_step, sft_tokens), "dpo": (dpo_step, dpo_tokens)}
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        fn, tokens = steps[cmd["op"]]
        seconds = []
        for _ in range(int(cmd["steps"])):
            t0 = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - t0)
        print(json.dumps({"seconds": seconds, "tokens": tokens}), flush=True)


if __name__ == "__main__":
    main()
