#!/usr/bin/python3
"""Small random Llama-family checkpoints written and run by Hugging Face's own modeling code, for
moxing's parity tests (test/models/llama-parity.test.ts). Run from the repository root with Debian's
python3-torch (1.13):

    TRANSFORMERS_SRC=DIR /usr/bin/python3 tools/hf_llama_fixtures.py

TRANSFORMERS_SRC is a checkout of huggingface/transformers at commit d9dc993fd (main of 2024-03-28,
between v4.39 and v4.40; it has Llama, Mistral and Qwen2 and runs on torch 1.13 with eager
attention). The fork github.com/bozheng-hit/transformers carries that history; with the mirror
fetched, `git --git-dir=MIRROR archive d9dc993fd src | tar -x -C DIR` gives the tree. Its imports of
huggingface_hub and safetensors, which are not installed, are stubbed (see HubStubs below); no
weights or files are downloaded. Two things that version lacks are added here and said so:
  - Llama 3's rope scaling (transformers 4.43's _compute_llama3_parameters, ported below) replaces
    the inverse frequencies of every layer's rotary embedding;
  - Qwen3 (transformers 4.51) is Qwen2 with a bias switch on all four projections, an explicit
    head_dim and an RMSNorm over each head's queries and keys before the rotation: Qwen3Attention
    below ports modeling_qwen3.py's attention onto Qwen2's eager attention, and the rest of the
    model is Qwen2's code unchanged (Qwen3's decoder layer, MLP, norms and head are the same).

It writes tools/fixtures/hf-llama/<name>/ for four models:
  llama3   LlamaForCausalLM, GQA (4 heads, 2 kv), rope_theta 500000 with Llama 3 rope scaling,
           untied head; bfloat16 weights in two shards with model.safetensors.index.json;
           a byte-level BPE tokenizer with Llama 3's pre-tokenizer and <|begin_of_text|>
  mistral  MistralForCausalLM, GQA (8 heads, 2 kv), float16, untied; a SentencePiece-style BPE
           tokenizer with byte fallback and <s>, as Llama 2 and Mistral have
  qwen2    Qwen2ForCausalLM, q/k/v biases, 4 heads = 4 kv heads, tied head; float16 weights;
           Qwen's pre-tokenizer, NFC, <|im_start|>/<|im_end|> and a non-special added token
  qwen3    Qwen3ForCausalLM (port), q/k norms, head_dim 16 != hidden 48 / 4 heads, tied; float32
Each directory has config.json (the model class's own keys, as save_pretrained writes them),
tokenizer.json + tokenizer_config.json (a tiny BPE trained by this script on a fixed text),
the weights (random, larger than Hugging Face's init so the logits are far from uniform, and
rounded to the stored dtype before the model runs), and expected.safetensors:
  ids          (2, 12) int32 token ids (random, below vocab_size)
  logits       (2, 12, vocab) the model's float32 logits for them
  loss         () the causal LM loss with labels = ids (Hugging Face shifts them)
  grad.<name>  gradients of that loss for a few parameters
  greedy       (1, 16) int32: 16 greedy tokens after ids[0] (full forward each step; every step's
               top logit beats the second by more than 1e-2, so the continuation is well defined)
"""

import importlib.abc
import importlib.machinery
import json
import math
import os
import struct
import sys
import types

import numpy as np
import torch

torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tools", "fixtures", "hf-llama")


# ---- importing transformers without huggingface_hub and safetensors ---------------------------------


class _Stub(Exception):
    """Stands for any class or function of a stubbed package (usable as a base class and in except)."""

    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        return self


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name.startswith("REGEX"):
            return r"^[0-9a-f]{40}$"
        if name.isupper():  # constants: paths are strings, flags are off
            return "/nonexistent/hf" if any(k in name for k in ("HOME", "CACHE", "PATH", "ENDPOINT", "URL")) else False
        cls = type(name, (_Stub,), {})
        setattr(self, name, cls)
        return cls


class HubStubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Every module under huggingface_hub and safetensors is a stub: transformers imports them at
    load time for the Hub and for file I/O, neither of which is used here."""

    ROOTS = ("huggingface_hub", "safetensors")

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in self.ROOTS:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _StubModule(spec.name)
        m.__path__ = []
        m.__version__ = "0.99.0"
        return m

    def exec_module(self, module):
        pass


def import_transformers():
    src = os.environ.get("TRANSFORMERS_SRC")
    if not src or not os.path.isdir(os.path.join(src, "src", "transformers")):
        raise SystemExit("set TRANSFORMERS_SRC to a checkout of huggingface/transformers at d9dc993fd (see the top of this file)")
    sys.meta_path.insert(0, HubStubs())
    # transformers checks the versions of its dependencies at import; two of them are stubs.
    check = types.ModuleType("transformers.dependency_versions_check")
    check.dep_version_check = lambda *a, **k: None
    sys.modules["transformers.dependency_versions_check"] = check
    sys.path.insert(0, os.path.join(src, "src"))
    import transformers.models.llama.modeling_llama as llama
    import transformers.models.mistral.modeling_mistral as mistral
    import transformers.models.qwen2.modeling_qwen2 as qwen2

    return llama, mistral, qwen2


# ---- Llama 3 rope scaling and Qwen3, ported --------------------------------------------------------------


def llama3_inv_freq(inv_freq, rope_scaling):
    """transformers 4.43, modeling_rope_utils._compute_llama3_parameters, from its inv_freq on."""
    factor = rope_scaling["factor"]
    low_freq_factor = rope_scaling["low_freq_factor"]
    high_freq_factor = rope_scaling["high_freq_factor"]
    old_context_len = rope_scaling["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


def make_qwen3_attention(qwen2):
    nn = torch.nn

    class Qwen3Attention(qwen2.Qwen2Attention):
        """modeling_qwen3.Qwen3Attention (transformers 4.51) on Qwen2's eager attention of this version."""

        def __init__(self, config, layer_idx=None):
            nn.Module.__init__(self)
            self.config = config
            self.layer_idx = layer_idx
            self.hidden_size = config.hidden_size
            self.num_heads = config.num_attention_heads
            self.head_dim = getattr(config, "head_dim", config.hidden_size // config.num_attention_heads)
            self.num_key_value_heads = config.num_key_value_heads
            self.num_key_value_groups = self.num_heads // self.num_key_value_heads
            self.max_position_embeddings = config.max_position_embeddings
            self.rope_theta = config.rope_theta
            self.is_causal = True
            self.attention_dropout = config.attention_dropout
            self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=config.attention_bias)
            self.k_proj = nn.Linear(config.hidden_size, self.num_key_value_heads * self.head_dim, bias=config.attention_bias)
            self.v_proj = nn.Linear(config.hidden_size, self.num_key_value_heads * self.head_dim, bias=config.attention_bias)
            self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=config.attention_bias)
            self.q_norm = qwen2.Qwen2RMSNorm(self.head_dim, eps=config.rms_norm_eps)  # only on the head dim
            self.k_norm = qwen2.Qwen2RMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.rotary_emb = qwen2.Qwen2RotaryEmbedding(self.head_dim, max_position_embeddings=self.max_position_embeddings, base=self.rope_theta)

        def forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None, output_attentions=False, use_cache=False, **kwargs):
            assert past_key_value is None
            bsz, q_len, _ = hidden_states.size()
            hidden_shape = (bsz, q_len, -1, self.head_dim)
            query_states = self.q_norm(self.q_proj(hidden_states).view(hidden_shape)).transpose(1, 2)
            key_states = self.k_norm(self.k_proj(hidden_states).view(hidden_shape)).transpose(1, 2)
            value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
            cos, sin = self.rotary_emb(value_states, seq_len=q_len)
            query_states, key_states = qwen2.apply_rotary_pos_emb(query_states, key_states, cos, sin, position_ids)
            key_states = qwen2.repeat_kv(key_states, self.num_key_value_groups)
            value_states = qwen2.repeat_kv(value_states, self.num_key_value_groups)
            attn_weights = torch.matmul(query_states, key_states.transpose(2, 3)) * self.head_dim**-0.5
            if attention_mask is not None:
                attn_weights = attn_weights + attention_mask[:, :, :, : key_states.shape[-2]]
            attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query_states.dtype)
            attn_output = torch.matmul(attn_weights, value_states).transpose(1, 2).contiguous()
            attn_output = self.o_proj(attn_output.reshape(bsz, q_len, -1))
            return attn_output, None, None

    return Qwen3Attention


# ---- tiny tokenizers -----------------------------------------------------------------------------------

CORPUS = " ".join(
    [
        "The state of the union is strong. We the people of the United States, in order to form a more",
        "perfect union, establish justice, insure domestic tranquility, provide for the common defence.",
        "Hello world! It's 2024: the people will build 123 bridges and 4567 roads. 你好，世界。 Café naïve.",
        "def main():\n    print('hello, world')  # 42\n",
    ]
    * 3
)

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def byte_level_alphabet():
    """GPT-2's bytes_to_unicode."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def train_merges(words, n_merges):
    """Plain BPE on a list of symbol sequences: the most frequent adjacent pair, ties to the first seen."""
    words = [list(w) for w in words]
    merges = []
    for _ in range(n_merges):
        counts = {}
        for w in words:
            for a, b in zip(w, w[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        best = max(counts, key=lambda p: counts[p])
        merges.append(best)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if (w[i], w[i + 1]) == best:
                    w[i : i + 2] = [w[i] + w[i + 1]]
                else:
                    i += 1
    return merges


def added(id_, content, special=True):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": special}


def byte_level_tokenizer(pattern, specials, normalizer=None, ignore_merges=False, bos=None, nonspecial=()):
    alphabet = byte_level_alphabet()
    # Pre-tokens approximated with whitespace splitting for training (the merges only need to be plausible).
    words = [("".join(alphabet[b] for b in (" " + w).encode("utf-8"))) for w in CORPUS.split()]
    merges = train_merges(words, 40)
    vocab = {alphabet[b]: i for i, b in enumerate(sorted(alphabet, key=lambda b: (alphabet[b] != chr(b), b)))}
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    tokens = [added(len(vocab) + i, s) for i, s in enumerate(specials)]
    tokens += [added(len(vocab) + len(specials) + i, s, special=False) for i, s in enumerate(nonspecial)]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    post = byte_level
    if bos is not None:
        post = {
            "type": "Sequence",
            "processors": [
                {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
                {
                    "type": "TemplateProcessing",
                    "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                    "pair": [
                        {"SpecialToken": {"id": bos, "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}},
                        {"SpecialToken": {"id": bos, "type_id": 1}},
                        {"Sequence": {"id": "B", "type_id": 1}},
                    ],
                    "special_tokens": {bos: {"id": bos, "ids": [next(t["id"] for t in tokens if t["content"] == bos)], "tokens": [bos]}},
                },
            ],
        }
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": tokens,
        "normalizer": normalizer,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
                byte_level,
            ],
        },
        "post_processor": post,
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": ignore_merges,
            "vocab": vocab,
            "merges": [[a, b] for a, b in merges],
        },
    }


def sentencepiece_tokenizer():
    """Llama 2 / Mistral layout: <unk> <s> </s>, 256 byte tokens <0xXX>, then pieces spelled with ▁."""
    text = "▁" + CORPUS.replace(" ", "▁")
    words = ["▁" + w for w in CORPUS.split()]
    chars = sorted(set(text) - {"\n"})
    merges = train_merges(words, 60)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for c in chars:
        vocab.setdefault(c, len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<s>", "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0},
            ],
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


def vocab_size_of(tok):
    ids = list(tok["model"]["vocab"].values()) + [t["id"] for t in tok["added_tokens"]]
    return max(ids) + 1


# ---- writing ---------------------------------------------------------------------------------------------

DTYPES = {torch.float32: ("F32", 4), torch.float16: ("F16", 2), torch.bfloat16: ("BF16", 2), torch.int32: ("I32", 4)}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    if t.dtype == torch.float16:
        return t.numpy().astype("<f2").tobytes()
    if t.dtype == torch.int32:
        return t.numpy().astype("<i4").tobytes()
    return t.numpy().astype("<f4").tobytes()


def write_safetensors(path, tensors, metadata=None):
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name in sorted(tensors):
        t = tensors[name]
        b = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype][0], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_weights(d, sd, dtype, shards):
    sd = {k: v.detach().to(dtype) for k, v in sd.items()}
    for f in os.listdir(d):
        if f.endswith(".safetensors") or f.endswith(".index.json"):
            os.remove(os.path.join(d, f))
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), sd, {"format": "pt"})
        return
    names = sorted(sd)
    per = math.ceil(len(names) / shards)
    weight_map = {}
    for i in range(shards):
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: sd[n] for n in names[i * per : (i + 1) * per]}
        write_safetensors(os.path.join(d, file), part, {"format": "pt"})
        weight_map.update({n: file for n in part})
    total = sum(t.numel() * DTYPES[t.dtype][1] for t in sd.values())
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")


# ---- the models ------------------------------------------------------------------------------------------


def randomize(model, seed, dtype):
    """Weights larger than Hugging Face's N(0, 0.02) init (so logits are well separated), rounded to dtype."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                v = 1 + 0.2 * torch.randn(p.shape, generator=g)
            elif name.endswith(".bias"):
                v = 0.3 * torch.randn(p.shape, generator=g)
            elif "embed_tokens" in name:
                v = torch.randn(p.shape, generator=g)
            else:
                v = torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]) * 1.5
            p.copy_(v.to(dtype).to(torch.float32))


def greedy(model, ids, n):
    seq = ids.clone()
    margins = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(seq, use_cache=False).logits[0, -1]
            top = torch.topk(logits, 2).values
            margins.append(float(top[0] - top[1]))
            seq = torch.cat([seq, logits.argmax().view(1, 1)], dim=1)
    return seq[:, ids.shape[1] :], min(margins), len(set(seq[0, ids.shape[1] :].tolist()))


def build(spec, mods, seed):
    model = spec["cls"](mods)(spec["hf_config"](mods))
    model.eval()
    if spec.get("rope_scaling"):
        for layer in model.model.layers:
            emb = layer.self_attn.rotary_emb
            emb.inv_freq = llama3_inv_freq(emb.inv_freq, spec["rope_scaling"])
    randomize(model, seed, spec["dtype"])
    return model


def write_fixture(name, spec, mods):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    vocab = spec["vocab_size"]
    for seed in range(100):
        model = build(spec, mods, seed)
        g = torch.Generator().manual_seed(1000 + seed)
        ids = torch.randint(3, vocab, (2, 12), generator=g)
        cont, margin, distinct = greedy(model, ids[:1], 16)
        if margin > 1e-2 and distinct >= 6:
            break
    else:
        raise SystemExit(f"{name}: no seed gave a well-separated greedy continuation")
    out = model(ids, labels=ids, use_cache=False)
    out.loss.backward()
    expected = {
        "ids": ids.to(torch.int32),
        "logits": out.logits.detach(),
        "loss": out.loss.detach().reshape(()),
        "greedy": cont.to(torch.int32),
    }
    for pname, p in model.named_parameters():
        if pname in spec["grads"]:
            expected[f"grad.{pname}"] = p.grad.detach()
    sd = model.state_dict()
    if spec["config"]["tie_word_embeddings"]:
        del sd["lm_head.weight"]  # save_pretrained keeps one of the tied tensors: embed_tokens
    write_weights(d, sd, spec["dtype"], spec.get("shards", 1))
    write_safetensors(os.path.join(d, "expected.safetensors"), expected)
    config = {**spec["config"], "torch_dtype": {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}[spec["dtype"]]}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(spec["tokenizer"], f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(spec["tokenizer_config"], f, ensure_ascii=False, indent=2)
        f.write("\n")
    print(f"{name}: seed {seed}, greedy margin {margin:.3f}, {distinct} distinct tokens, loss {out.loss.item():.4f}")


def main():
    llama, mistral, qwen2 = import_transformers()
    mods = {"llama": llama, "mistral": mistral, "qwen2": qwen2}

    # llama3: Llama 3's tokenizer layout and rope scaling, GQA, bfloat16 in two shards.
    l3_tok = byte_level_tokenizer(LLAMA3_PATTERN, ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"], ignore_merges=True, bos="<|begin_of_text|>")
    l3_vocab = vocab_size_of(l3_tok)
    l3_bos = l3_vocab - 3
    rope_scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    l3_common = dict(vocab_size=l3_vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=500000.0,
                     tie_word_embeddings=False, bos_token_id=l3_bos, eos_token_id=l3_bos + 1)
    llama3 = {
        "cls": lambda m: m["llama"].LlamaForCausalLM,
        "hf_config": lambda m: m["llama"].LlamaConfig(**l3_common, attn_implementation="eager"),
        "rope_scaling": rope_scaling,
        "vocab_size": l3_vocab,
        "dtype": torch.bfloat16,
        "shards": 2,
        "config": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **l3_common, "hidden_act": "silu",
                   "attention_bias": False, "attention_dropout": 0.0, "initializer_range": 0.02, "mlp_bias": False,
                   "pretraining_tp": 1, "rope_scaling": rope_scaling, "use_cache": True, "transformers_version": "4.43.0"},
        "tokenizer": l3_tok,
        "tokenizer_config": {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "clean_up_tokenization_spaces": True,
                             "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast",
                             "chat_template": "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' }}{% endfor %}"},
        "grads": ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight", "model.norm.weight"],
    }

    # mistral: SentencePiece-style tokenizer with byte fallback, 8 heads over 2 kv heads.
    sp_tok = sentencepiece_tokenizer()
    sp_vocab = vocab_size_of(sp_tok)
    m_common = dict(vocab_size=sp_vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=8,
                    num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=10000.0,
                    tie_word_embeddings=False, sliding_window=None, bos_token_id=1, eos_token_id=2)
    mistral_spec = {
        "cls": lambda m: m["mistral"].MistralForCausalLM,
        "hf_config": lambda m: m["mistral"].MistralConfig(**m_common, attn_implementation="eager"),
        "vocab_size": sp_vocab,
        "dtype": torch.float16,
        "config": {"architectures": ["MistralForCausalLM"], "model_type": "mistral", **m_common, "hidden_act": "silu",
                   "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": True, "transformers_version": "4.39.0"},
        "tokenizer": sp_tok,
        "tokenizer_config": {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                             "legacy": True, "tokenizer_class": "LlamaTokenizer", "clean_up_tokenization_spaces": False,
                             "chat_template": "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}"},
        "grads": ["model.layers.0.self_attn.k_proj.weight", "model.layers.1.post_attention_layernorm.weight"],
    }

    # qwen2: biases on q/k/v, multi-head (kv = heads), tied head, float16, a vocab padded past the tokenizer.
    q_specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    q2_tok = byte_level_tokenizer(QWEN_PATTERN, q_specials, normalizer={"type": "NFC"}, nonspecial=["<think>", "</think>"])
    q2_tok_vocab = vocab_size_of(q2_tok)
    q_vocab = (q2_tok_vocab + 15) // 16 * 16
    eot = q2_tok_vocab - 5
    q2_common = dict(vocab_size=q_vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=4, max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=1000000.0,
                     tie_word_embeddings=True, use_sliding_window=False, sliding_window=None, max_window_layers=2,
                     bos_token_id=eot, eos_token_id=eot + 2)
    q_tok_config = {"add_bos_token": False, "add_prefix_space": False, "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                    "errors": "replace", "model_max_length": 32768, "tokenizer_class": "Qwen2Tokenizer", "clean_up_tokenization_spaces": False,
                    "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
                    "chat_template": "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"}
    qwen2_spec = {
        "cls": lambda m: m["qwen2"].Qwen2ForCausalLM,
        "hf_config": lambda m: m["qwen2"].Qwen2Config(**q2_common, attn_implementation="eager"),
        "vocab_size": q_vocab,
        "dtype": torch.float16,
        "config": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", **q2_common, "hidden_act": "silu",
                   "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": True, "transformers_version": "4.39.0"},
        "tokenizer": q2_tok,
        "tokenizer_config": q_tok_config,
        "grads": ["model.layers.0.self_attn.q_proj.bias", "model.layers.1.input_layernorm.weight"],
    }

    # qwen3: q/k norms, head_dim 16 with hidden 48 and 4 heads over 2 kv heads, tied, float32.
    Qwen3Attention = make_qwen3_attention(qwen2)
    q3_common = dict(vocab_size=q_vocab, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=16, max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=1000000.0,
                     tie_word_embeddings=True, attention_bias=False, use_sliding_window=False, sliding_window=None,
                     max_window_layers=2, bos_token_id=eot, eos_token_id=eot + 2)

    def qwen3_config(m):
        c = m["qwen2"].Qwen2Config(**{k: v for k, v in q3_common.items() if k not in ("head_dim", "attention_bias")}, attn_implementation="eager")
        c.head_dim = q3_common["head_dim"]
        c.attention_bias = q3_common["attention_bias"]
        m["qwen2"].QWEN2_ATTENTION_CLASSES["eager"] = Qwen3Attention
        return c

    qwen3_spec = {
        "cls": lambda m: m["qwen2"].Qwen2ForCausalLM,
        "hf_config": qwen3_config,
        "vocab_size": q_vocab,
        "dtype": torch.float32,
        "config": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", **q3_common, "hidden_act": "silu",
                   "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": True, "transformers_version": "4.51.0"},
        "tokenizer": q2_tok,
        "tokenizer_config": q_tok_config,
        "grads": ["model.layers.0.self_attn.q_norm.weight", "model.layers.1.self_attn.k_proj.weight"],
    }

    for name, spec in [("llama3", llama3), ("mistral", mistral_spec), ("qwen2", qwen2_spec), ("qwen3", qwen3_spec)]:
        write_fixture(name, spec, mods)


if __name__ == "__main__":
    main()
