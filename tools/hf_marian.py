#!/usr/bin/python3
"""Tiny random MarianMT checkpoints and what Hugging Face's own modeling code computes on them: the
golden fixture of test/models/marian.test.ts (logits, loss and generate() ids of moxing's Marian).

Run from the repository root with Debian's python3-torch, python3-numpy, python3-packaging,
python3-filelock, python3-tqdm, python3-regex, python3-yaml and python3-requests, and transformers'
source at v4.31 (the fork Llama2D/transformers at commit 07360b6c carries it):

    git -C /path/to/transformers archive 07360b6c src/transformers | tar x -C /tmp/hf
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 tools/hf_marian.py /tmp/hf/src

huggingface_hub and safetensors are stubbed (nothing here downloads or reads their files). Writes
tools/fixtures/hf-marian/shared/ (one vocabulary for source, target and head) and separate/ (two
vocabularies, share_encoder_decoder_embeddings false), each with:
  config.json        MarianConfig.to_dict(), as save_pretrained writes it
  model.safetensors  the state dict as save_pretrained(safe_serialization=True) keeps it: tied copies
                     and the sinusoid tables left out (model.shared.weight, or the decoder's table and
                     the encoder's own), final_logits_bias kept; written with struct here
  expected.json      inputs (a padded batch of two sources, decoder inputs, labels with -100) and
                     outputs: encoder_last_hidden_state, logits, loss, and the sequences generate()
                     returns for greedy and beam-search settings (shared/ only)
A random model only repeats one token, so each is trained for 120 steps (a few seconds) on a toy task
(reverse the source tokens): enough for varied outputs, eos at different points and beams that
disagree. Each generate() call is also run in float64 and must give the same ids, so the expected ids
do not hang on rounding.
"""
import copy
import json
import os
import struct
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tools", "fixtures", "hf-marian")


def import_transformers(src):
    import importlib.abc
    import importlib.machinery
    import importlib.metadata as md
    import types

    class Dummy:
        def __init__(self, *a, **k):
            pass

        def __call__(self, *a, **k):
            return Dummy()

        def __getattr__(self, name):
            return Dummy()

        def __bool__(self):
            return False

        def __iter__(self):
            return iter(())

    class StubModule(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            if name[:1].isupper():
                cls = type(name, (Exception,) if name.endswith("Error") else (object,), {"__init__": lambda self, *a, **k: None})
                setattr(self, name, cls)
                return cls
            return Dummy()

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("huggingface_hub", "safetensors"):
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec):
            m = StubModule(spec.name)
            m.__path__ = []
            m.__version__ = "0.16.4"
            return m

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, Finder())
    real_version = md.version
    md.version = lambda name: {"huggingface-hub": "0.16.4", "safetensors": "0.3.1"}.get(name) or real_version(name)
    sys.path.insert(0, src)
    import transformers

    assert transformers.__version__.startswith("4.3"), transformers.__version__
    return transformers


def write_safetensors(path, tensors):
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        data = tensors[name].detach().contiguous().float().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def saved_state_dict(model):
    """What save_pretrained(safe_serialization=True) writes: of each group of tied tensors, the names
    in _tied_weights_keys are dropped while another name of the group remains (v4.31's rule)."""
    import re

    sd = model.state_dict()
    for k in list(sd):
        if any(re.search(p, k) for p in model._keys_to_ignore_on_save or []):
            del sd[k]
    groups = {}
    for k, v in sd.items():
        groups.setdefault(v.data_ptr(), []).append(k)
    for names in groups.values():
        if len(names) < 2:
            continue
        found = 0
        for name in sorted(names):
            if any(re.search(p, name) for p in model._tied_weights_keys) and name in sd:
                found += 1
                if found < len(names):
                    del sd[name]
    return sd


def flat(t):
    return [round(float(v), 7) for v in t.detach().reshape(-1).tolist()]


GENERATE = [
    ("greedy", dict(num_beams=1, max_length=20)),
    ("greedy-min-length-no-repeat", dict(num_beams=1, max_length=16, min_length=10, no_repeat_ngram_size=2, bad_words_ids=[[5], [7, 8]])),
    ("beam4", dict(num_beams=4, max_length=20)),
    ("beam3-length-penalty-2-early", dict(num_beams=3, max_length=20, length_penalty=2.0, early_stopping=True)),
    ("beam4-no-repeat-2-repetition", dict(num_beams=4, max_length=20, no_repeat_ngram_size=2, repetition_penalty=1.3)),
    ("beam2-never-length-penalty-0.5", dict(num_beams=2, max_length=14, early_stopping="never", length_penalty=0.5)),
    ("beam5-short", dict(num_beams=5, max_length=6)),
]


def toy_batch(cfg, g, n=32):
    """Sources of 3..8 random tokens + eos; targets: the tokens reversed + eos (a task the model half learns)."""
    V, pad, eos = cfg["vocab_size"], cfg["pad_token_id"], cfg["eos_token_id"]
    lens = torch.randint(3, 9, (n,), generator=g)
    src = torch.full((n, 9), pad)
    labels = torch.full((n, 9), -100)
    for i, L in enumerate(lens.tolist()):
        toks = torch.randint(1, min(V, 50) - 1, (L,), generator=g)
        src[i, :L] = toks
        src[i, L] = eos
        labels[i, :L] = toks.flip(0)
        labels[i, L] = eos
    return src, (src != pad).long(), labels


def build(transformers, cfg, seed, steps=120):
    """A random MarianMT trained briefly on the toy task, so generate() has real choices to make:
    outputs that vary, eos at different points, beams that disagree. Biases and LayerNorms are
    perturbed so that every tensor shapes the logits."""
    torch.manual_seed(seed)
    model = transformers.MarianMTModel(transformers.MarianConfig(**cfg))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.normal_(0, 0.05)
        model.final_logits_bias.normal_(0, 0.1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed + 7)
    model.train()
    for _ in range(steps):
        src, mask, labels = toy_batch(cfg, g)
        loss = model(input_ids=src, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def run(transformers, name, cfg, seed, generate):
    model = build(transformers, cfg, seed)
    g = torch.Generator().manual_seed(seed + 100)
    V, Vd, pad = cfg["vocab_size"], cfg.get("decoder_vocab_size") or cfg["vocab_size"], cfg["pad_token_id"]
    src = torch.randint(1, V - 1, (2, 9), generator=g)
    src[0, 8] = cfg["eos_token_id"]
    src[1, 6] = cfg["eos_token_id"]
    src[1, 7:] = pad
    mask = (torch.arange(9)[None, :] < torch.tensor([[9], [7]])).long()
    labels = torch.randint(1, Vd - 1, (2, 7), generator=g)
    labels[1, 5:] = -100
    with torch.no_grad():
        out = model(input_ids=src, attention_mask=mask, labels=labels)
    expected = {
        "input_ids": src.tolist(),
        "attention_mask": mask.tolist(),
        "labels": labels.tolist(),
        "decoder_input_ids": transformers.models.marian.modeling_marian.shift_tokens_right(labels, pad, cfg["decoder_start_token_id"]).tolist(),
        "encoder_last_hidden_state": flat(out.encoder_last_hidden_state),
        "logits": {"shape": list(out.logits.shape), "data": flat(out.logits)},
        "loss": float(out.loss),
        "generate": [],
    }
    double = copy.deepcopy(model).double()
    for gname, kw in generate:
        for inputs, m in (((src, mask), "batch"), ((src[1:, :7], mask[1:, :7]), "single")):
            with torch.no_grad():
                ids = model.generate(input_ids=inputs[0], attention_mask=inputs[1], **kw).tolist()
                ids64 = double.generate(input_ids=inputs[0], attention_mask=inputs[1], **kw).tolist()
            assert ids == ids64, f"{name} {gname} {m}: float32 and float64 disagree ({ids} vs {ids64}); try another seed"
            expected["generate"].append({"name": f"{gname}-{m}", "options": kw, "input_ids": inputs[0].tolist(), "attention_mask": inputs[1].tolist(), "sequences": ids})
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    cfg_dict = model.config.to_dict()
    cfg_dict.pop("transformers_version", None)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg_dict, f, indent=2, sort_keys=True)
        f.write("\n")
    sd = saved_state_dict(model)
    write_safetensors(os.path.join(d, "model.safetensors"), sd)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f)
        f.write("\n")
    seqs = [g["sequences"] for g in expected["generate"]]
    print(f"{name}: {len(sd)} tensors ({', '.join(k for k in sorted(sd) if 'layers' not in k)}), loss {expected['loss']:.4f}")
    for gen in expected["generate"]:
        print(f"  {gen['name']}: {gen['sequences']}")
    return seqs


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    transformers = import_transformers(sys.argv[1])
    torch.set_num_threads(1)
    base = dict(
        vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=64, activation_function="swish", scale_embedding=True,
        pad_token_id=63, eos_token_id=0, decoder_start_token_id=63, forced_eos_token_id=0, dropout=0.1, attention_dropout=0.0,
        activation_dropout=0.0,
    )
    run(transformers, "shared", base, 3, GENERATE)
    # Two tables of the same size: v4.31 builds the decoder's table with vocab_size rows whatever
    # decoder_vocab_size says, so only equal sizes run there.
    run(transformers, "separate", dict(base, share_encoder_decoder_embeddings=False, activation_function="gelu", scale_embedding=False),
        4, GENERATE[:1])


if __name__ == "__main__":
    main()
