#!/usr/bin/python3
"""A LoRA adapter in PEFT's layout on the tiny GPT-2 of tools/fixtures/hf-gpt2, and what PyTorch computes
with it, for test/nn/lora.test.ts. Run from the repository root with Debian's torch:

    /usr/bin/python3 tools/torch_lora.py

It writes tools/fixtures/lora/:
  adapter_config.json        as PEFT's LoraConfig.save_pretrained writes it: r 4, lora_alpha 8,
                             target_modules ["c_attn", "c_proj"], fan_in_fan_out true (GPT-2's Conv1D)
  adapter_model.safetensors  base_model.model.transformer.h.N.attn.c_attn.lora_A.weight (r, in) and
                             .lora_B.weight (out, r) for attn.c_attn, attn.c_proj and mlp.c_proj of both
                             blocks, F32, metadata format "pt"
  expected.json              logits of the adapted model on the hf-gpt2 prompt, and the merged Conv1D
                             weight of h.0.attn.c_attn (in, out)

The arithmetic is PEFT's (peft/tuners/lora/layer.py, Linear with is_target_conv_1d_layer): the layer's
output is base(x) + lora_B(lora_A(x)) * scaling with scaling = lora_alpha / r, and merging adds
get_delta_weight() = transpose(lora_B.weight @ lora_A.weight, fan_in_fan_out) * scaling to the Conv1D
weight (in, out). lora_B is random here (PEFT starts it at zero), so the adapter changes the outputs.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_hf_gpt2 as gpt2  # noqa: E402  (the GPT-2 forward that wrote the base fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = os.path.join(ROOT, "tools", "fixtures", "hf-gpt2")
OUT = os.path.join(ROOT, "tools", "fixtures", "lora")
R, ALPHA = 4, 8
SCALING = ALPHA / R
TARGETS = ["attn.c_attn", "attn.c_proj", "mlp.c_proj"]


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[b:en], dtype="<f4").copy()).reshape(e["shape"])
    return out


def main():
    torch.manual_seed(0)
    sd = read_safetensors(os.path.join(BASE, "model.safetensors"))
    ids = json.load(open(os.path.join(BASE, "expected.json")))["ids"]
    g = torch.Generator().manual_seed(7)
    adapter = {}
    for i in range(gpt2.N_LAYER):
        for t in TARGETS:
            w = sd[f"transformer.h.{i}.{t}.weight"]  # Conv1D (in, out)
            n_in, n_out = w.shape
            a = (torch.rand(R, n_in, generator=g) * 2 - 1) / n_in**0.5  # PEFT's kaiming_uniform(a=sqrt(5))
            b = torch.randn(n_out, R, generator=g) * 0.1
            adapter[f"base_model.model.transformer.h.{i}.{t}.lora_A.weight"] = a
            adapter[f"base_model.model.transformer.h.{i}.{t}.lora_B.weight"] = b

    # PEFT's forward for a Conv1D target: base(x) + lora_B(lora_A(x)) * scaling.
    base_conv1d = gpt2.conv1d
    lora_of = {}
    for i in range(gpt2.N_LAYER):
        for t in TARGETS:
            w = sd[f"transformer.h.{i}.{t}.weight"]
            lora_of[id(w)] = (adapter[f"base_model.model.transformer.h.{i}.{t}.lora_A.weight"], adapter[f"base_model.model.transformer.h.{i}.{t}.lora_B.weight"])

    def lora_conv1d(x, w, b):
        y = base_conv1d(x, w, b)
        if id(w) in lora_of:
            a, bb = lora_of[id(w)]
            y = y + (x @ a.t()) @ bb.t() * SCALING
        return y

    gpt2.conv1d = lora_conv1d
    with torch.no_grad():
        logits = gpt2.forward(sd, torch.tensor([ids]))[0]
    gpt2.conv1d = base_conv1d

    # merge_and_unload: W += transpose(B @ A, fan_in_fan_out=True) * scaling.
    merged = dict(sd)
    for i in range(gpt2.N_LAYER):
        for t in TARGETS:
            a, b = lora_of[id(sd[f"transformer.h.{i}.{t}.weight"])]
            merged[f"transformer.h.{i}.{t}.weight"] = sd[f"transformer.h.{i}.{t}.weight"] + (b @ a).t() * SCALING
    with torch.no_grad():
        merged_logits = gpt2.forward(merged, torch.tensor([ids]))[0]
    assert torch.allclose(logits, merged_logits, atol=1e-4), "merging must not change the outputs"

    os.makedirs(OUT, exist_ok=True)
    config = {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": "tools/fixtures/hf-gpt2",
        "bias": "none",
        "fan_in_fan_out": True,
        "inference_mode": True,
        "init_lora_weights": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "lora_alpha": ALPHA,
        "lora_dropout": 0.05,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": R,
        "rank_pattern": {},
        "revision": None,
        "target_modules": ["c_attn", "c_proj"],
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }
    with open(os.path.join(OUT, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    gpt2.write_safetensors(os.path.join(OUT, "adapter_model.safetensors"), adapter, {"format": "pt"})
    r9 = lambda t: [float("%.9g" % v) for v in t.reshape(-1).tolist()]  # noqa: E731
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(
            {
                "meta": {"generator": "tools/torch_lora.py", "torch": torch.__version__, "r": R, "lora_alpha": ALPHA},
                "ids": ids,
                "logits": {"shape": list(logits.shape), "data": r9(logits)},
                "merged": {
                    name: {"shape": list(merged[name].shape), "data": r9(merged[name])}
                    for name in ("transformer.h.0.attn.c_attn.weight",)
                },
            },
            f,
        )
        f.write("\n")
    for name in sorted(os.listdir(OUT)):
        print(f"wrote tools/fixtures/lora/{name} ({os.path.getsize(os.path.join(OUT, name)) / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
