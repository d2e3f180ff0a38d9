#!/usr/bin/python3
"""A tiny GPT-2 checkpoint in Hugging Face's layout, written by PyTorch, for moxing's parity test
(test/io/hf-gpt2.test.ts). Run it from the repository root with the system Python (Debian's torch):

    /usr/bin/python3 tools/torch_hf_gpt2.py

It rewrites tools/fixtures/hf-gpt2/:
  tokenizer.json     a byte-level BPE of 300 tokens (256 bytes, 43 merges, <|endoftext|>), trained by
                     moxing itself (node + tsx, run from here) and saved in Hugging Face's format
  config.json        GPT2Config's keys, as transformers' save_pretrained writes them
  model.safetensors  GPT2LMHeadModel's state dict: transformer.wte.weight, transformer.h.N.attn.c_attn.weight
                     (Conv1D, (in, out)), ... and no lm_head.weight (tied to wte); metadata format "pt".
                     Written with struct + json here (the safetensors package is not needed).
  expected.json      the prompt's token ids, the logits for them, and the greedy continuation

The model is this file's own PyTorch code, following transformers' modeling_gpt2.py: Conv1D
projections y = x @ W + b with W (in, out), pre-LN blocks with LayerNorm eps 1e-5, GELU "gelu_new"
(tanh approximation), attention scores scaled by 1/sqrt(head size) with a causal mask, learned
positions, and the head tied to the token embedding. Weights are random and larger than GPT-2's
init; the script takes the first seed whose greedy continuation is varied (8 distinct tokens or more)
and wins every step by a margin far above float32 noise (> 0.01), so the continuation is well defined.
"""

import json
import math
import os
import struct
import subprocess

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tools", "fixtures", "hf-gpt2")

N_LAYER, N_HEAD, N_EMBD, N_POSITIONS = 2, 4, 32, 64
EPS = 1e-5
NEW_TOKENS = 24
PROMPT = "The union is strong, and the people will build"

CORPUS = " ".join(
    [
        "The state of the union is strong. We the people of the United States, in order to form a more",
        "perfect union, establish justice, insure domestic tranquility, provide for the common defence,",
        "promote the general welfare, and secure the blessings of liberty to ourselves and our posterity.",
        "The people will build a nation of hope, and the union will work for the people.",
    ]
    * 4
)

# ---- the tokenizer, trained by moxing -------------------------------------------------------------------

TRAIN_TOKENIZER = """
import { ByteLevelBPE } from "./src/tokenizers/index.ts";
const [corpus, prompt] = JSON.parse(process.argv[1]);
const tok = ByteLevelBPE.train(corpus, { vocabSize: 300, specialTokens: ["<|endoftext|>"] });
console.log(JSON.stringify({ tokenizer: tok.toJSON(), ids: tok.encode(prompt), vocabSize: tok.vocabSize }));
"""


def train_tokenizer():
    r = subprocess.run(
        ["node", "--import", "tsx", "--input-type=module", "-e", TRAIN_TOKENIZER, json.dumps([CORPUS, PROMPT])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MOXING_QUIET": "1"},
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---- GPT-2, as transformers defines it ---------------------------------------------------------------------


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def conv1d(x, w, b):
    """transformers' Conv1D: weight (in, out), y = x @ W + b."""
    return torch.addmm(b, x.reshape(-1, x.shape[-1]), w).reshape(*x.shape[:-1], w.shape[1])


def forward(sd, ids):
    """GPT2LMHeadModel forward on (B, T) ids -> (B, T, vocab) logits."""
    B, T = ids.shape
    C, nh = N_EMBD, N_HEAD
    hs = C // nh
    x = sd["transformer.wte.weight"][ids] + sd["transformer.wpe.weight"][torch.arange(T)]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(N_LAYER):
        p = f"transformer.h.{i}."
        h = F.layer_norm(x, (C,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], EPS)
        qkv = conv1d(h, sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"])
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        att = att.masked_fill(~mask, torch.finfo(att.dtype).min).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + conv1d(y, sd[p + "attn.c_proj.weight"], sd[p + "attn.c_proj.bias"])
        h = F.layer_norm(x, (C,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], EPS)
        h = gelu_new(conv1d(h, sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"]))
        x = x + conv1d(h, sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
    x = F.layer_norm(x, (C,), sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"], EPS)
    return x @ sd["transformer.wte.weight"].t()  # tied lm_head


def random_state_dict(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    C = N_EMBD

    def randn(*shape, std):
        return torch.randn(*shape, generator=g) * std

    sd = {
        "transformer.wte.weight": randn(vocab, C, std=0.3),
        "transformer.wpe.weight": randn(N_POSITIONS, C, std=1.0),
        "transformer.ln_f.weight": 1 + randn(C, std=0.2),
        "transformer.ln_f.bias": randn(C, std=0.2),
    }
    for i in range(N_LAYER):
        p = f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            sd[p + ln + ".weight"] = 1 + randn(C, std=0.2)
            sd[p + ln + ".bias"] = randn(C, std=0.2)
        # Conv1D weights are (in_features, out_features).
        for name, (n_in, n_out) in {
            "attn.c_attn": (C, 3 * C),
            "attn.c_proj": (C, C),
            "mlp.c_fc": (C, 4 * C),
            "mlp.c_proj": (4 * C, C),
        }.items():
            sd[p + name + ".weight"] = randn(n_in, n_out, std=1.0 / math.sqrt(n_in))
            sd[p + name + ".bias"] = randn(n_out, std=0.1)
    return sd


def greedy(sd, ids, n):
    """Greedy continuation recomputing the whole context each step; also the smallest top-1 margin."""
    ids = list(ids)
    out, margin = [], float("inf")
    for _ in range(n):
        logits = forward(sd, torch.tensor([ids[-N_POSITIONS:]]))[0, -1]
        top = torch.topk(logits, 2)
        margin = min(margin, (top.values[0] - top.values[1]).item())
        nxt = int(top.indices[0])
        ids.append(nxt)
        out.append(nxt)
    return out, margin


# ---- files ----------------------------------------------------------------------------------------------------


def write_safetensors(path, tensors, metadata):
    """The safetensors format: u64 LE header length, JSON header (space-padded to 8 bytes), data."""
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().float()
        data = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2 if path.endswith("config.json") else None, separators=None, allow_nan=False)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = train_tokenizer()
    vocab = tok["vocabSize"]
    eot = tok["tokenizer"]["added_tokens"][0]["id"]
    ids = tok["ids"]
    # The first seed whose greedy continuation is varied and never close to a tie.
    for seed in range(100):
        sd = random_state_dict(vocab, seed)
        with torch.no_grad():
            cont, margin = greedy(sd, ids, NEW_TOKENS)
        if margin > 0.01 and len(set(cont)) >= 8:
            break
    else:
        raise SystemExit("no seed in 0..99 gives a varied, well-separated greedy continuation")
    with torch.no_grad():
        logits = forward(sd, torch.tensor([ids]))[0]

    config = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": eot,
        "embd_pdrop": 0.1,
        "eos_token_id": eot,
        "initializer_range": 0.02,
        "layer_norm_epsilon": EPS,
        "model_type": "gpt2",
        "n_ctx": N_POSITIONS,
        "n_embd": N_EMBD,
        "n_head": N_HEAD,
        "n_inner": None,
        "n_layer": N_LAYER,
        "n_positions": N_POSITIONS,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "torch_dtype": "float32",
        "transformers_version": "4.40.0",
        "use_cache": True,
        "vocab_size": vocab,
    }
    write_json(os.path.join(OUT, "config.json"), config)
    write_json(os.path.join(OUT, "tokenizer.json"), tok["tokenizer"])
    write_safetensors(os.path.join(OUT, "model.safetensors"), sd, {"format": "pt"})
    write_json(
        os.path.join(OUT, "expected.json"),
        {
            "meta": {
                "generator": "tools/torch_hf_gpt2.py",
                "torch": torch.__version__,
                "seed": seed,
                "min_greedy_margin": float("%.4g" % margin),
            },
            "prompt": PROMPT,
            "ids": ids,
            "logits": {"shape": list(logits.shape), "data": [float("%.9g" % v) for v in logits.reshape(-1).tolist()]},
            "greedy": cont,
        },
    )
    for name in sorted(os.listdir(OUT)):
        print(f"wrote tools/fixtures/hf-gpt2/{name} ({os.path.getsize(os.path.join(OUT, name)) / 1024:.1f} KiB)")
    print(f"prompt ids {ids}\ngreedy {cont} (smallest margin {margin:.4f})")


if __name__ == "__main__":
    main()
