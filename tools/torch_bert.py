#!/usr/bin/python3
"""PyTorch reference for moxing's BERT (src/models/bert.ts): a tiny random BERT, written the way
Hugging Face's BertModel / BertForMaskedLM compute it, and its outputs on fixed padded inputs.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 tools/torch_bert.py
Needs Debian's python3-torch (no transformers). Writes tools/fixtures/bert/:
  config.json          Hugging Face BertConfig keys
  model.safetensors    the weights under Hugging Face's names (bert.embeddings.word_embeddings.weight,
                       bert.encoder.layer.0.attention.self.query.weight, ..., cls.predictions.bias),
                       without the tied decoder weight (as save_pretrained writes them), plus an I64
                       bert.embeddings.position_ids buffer as older transformers versions saved it
  expected.safetensors inputs (input_ids, token_type_ids, attention_mask, labels) and outputs:
                       hidden_states.N, last_hidden_state, pooler_output, logits, loss, and the
                       gradients grad.<parameter name> of the masked-LM loss

The model follows transformers/models/bert/modeling_bert.py (eager attention): embeddings = word +
token type + position, LayerNorm(eps 1e-12); each layer: separate query/key/value Linear layers,
softmax(q k^T / sqrt(d) + mask) v with padded keys masked, dense + residual + LayerNorm, GELU (erf)
intermediate, dense + residual + LayerNorm; pooler tanh(dense(h[:, 0])); masked-LM head
dense -> GELU -> LayerNorm -> decoder tied to the word embeddings + bias. Dropout is off (eval).
Weights are random with a wide spread (std 0.2, LayerNorms perturbed around 1 and 0) so that every
tensor, including the LayerNorm parameters, changes the outputs measurably.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=24,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    initializer_range=0.2,
    pad_token_id=0,
    hidden_act="gelu",
    model_type="bert",
    architectures=["BertForMaskedLM"],
    position_embedding_type="absolute",
)


class SelfAttention(nn.Module):
    def __init__(self, C, nh):
        super().__init__()
        self.nh = nh
        self.query = nn.Linear(C, C)
        self.key = nn.Linear(C, C)
        self.value = nn.Linear(C, C)

    def forward(self, x, ext_mask):
        B, T, C = x.shape
        hs = C // self.nh

        def heads(t):
            return t.view(B, T, self.nh, hs).permute(0, 2, 1, 3)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(hs) + ext_mask
        probs = F.softmax(scores, dim=-1)
        return (probs @ v).permute(0, 2, 1, 3).reshape(B, T, C)


class AddNorm(nn.Module):
    def __init__(self, cin, C, eps):
        super().__init__()
        self.dense = nn.Linear(cin, C)
        self.LayerNorm = nn.LayerNorm(C, eps=eps)

    def forward(self, h, residual):
        return self.LayerNorm(self.dense(h) + residual)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = SelfAttention(c["hidden_size"], c["num_attention_heads"])
        self.output = AddNorm(c["hidden_size"], c["hidden_size"], c["layer_norm_eps"])

    def forward(self, x, m):
        return self.output(self.self(x, m), x)


class Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

    def forward(self, x):
        return F.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = AddNorm(c["intermediate_size"], c["hidden_size"], c["layer_norm_eps"])

    def forward(self, x, m):
        a = self.attention(x, m)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        C = c["hidden_size"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], C, padding_idx=c["pad_token_id"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], C)
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], C)
        self.LayerNorm = nn.LayerNorm(C, eps=c["layer_norm_eps"])

    def forward(self, ids, types):
        T = ids.shape[1]
        pos = torch.arange(T).unsqueeze(0)
        x = self.word_embeddings(ids) + self.token_type_embeddings(types) + self.position_embeddings(pos)
        return self.LayerNorm(x)


class Pooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])

    def forward(self, h):
        return torch.tanh(self.dense(h[:, 0]))


class BertModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)
        self.pooler = Pooler(c)

    def forward(self, ids, types, mask):
        # Hugging Face's extended attention mask: 0 for real keys, the float32 minimum for padding.
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        x = self.embeddings(ids, types)
        states = [x]
        for layer in self.encoder.layer:
            x = layer(x, ext)
            states.append(x)
        return x, self.pooler(x), states


class Transform(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, x):
        return self.LayerNorm(F.gelu(self.dense(x)))


class Predictions(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transform = Transform(c)
        self.bias = nn.Parameter(torch.zeros(c["vocab_size"]))


class Cls(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.predictions = Predictions(c)


class BertForMaskedLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bert = BertModel(c)
        self.cls = Cls(c)

    def forward(self, ids, types, mask, labels):
        h, pooled, states = self.bert(ids, types, mask)
        p = self.cls.predictions
        logits = F.linear(p.transform(h), self.bert.embeddings.word_embeddings.weight, p.bias)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)
        return h, pooled, states, logits, loss


def write_safetensors(path, tensors):
    """tensors: name -> (dtype, shape, little-endian bytes); sorted, header padded to 8 bytes."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def f32(t):
    t = t.detach().contiguous().float()
    return ("F32", tuple(t.shape), struct.pack(f"<{t.numel()}f", *t.flatten().tolist()))


def i32(t):
    t = t.contiguous().int()
    return ("I32", tuple(t.shape), struct.pack(f"<{t.numel()}i", *t.flatten().tolist()))


def i64(t):
    t = t.contiguous().long()
    return ("I64", tuple(t.shape), struct.pack(f"<{t.numel()}q", *t.flatten().tolist()))


def main():
    torch.manual_seed(0)
    c = CONFIG
    model = BertForMaskedLM(c)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("LayerNorm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("LayerNorm.bias") or name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(c["initializer_range"] * torch.randn_like(p))
    model.eval()

    # Three sequences of 10: one full, two padded, with sentence B segments.
    ids = torch.tensor(
        [
            [2, 15, 27, 38, 49, 3, 51, 62, 73, 3],
            [2, 11, 4, 13, 3, 44, 3, 0, 0, 0],
            [2, 98, 97, 4, 3, 0, 0, 0, 0, 0],
        ]
    )
    types = torch.tensor(
        [
            [0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
            [0, 0, 0, 0, 0, 1, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ]
    )
    mask = (ids != 0).long()
    labels = torch.full_like(ids, -100)
    labels[0, 2] = 27
    labels[0, 7] = 5
    labels[1, 2] = 12
    labels[2, 3] = 96
    h, pooled, states, logits, loss = model(ids, types, mask, labels)
    loss.backward()

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "bert")
    os.makedirs(out, exist_ok=True)
    weights = {name: f32(p) for name, p in model.named_parameters()}
    weights["bert.embeddings.position_ids"] = i64(torch.arange(c["max_position_embeddings"]).unsqueeze(0))
    write_safetensors(os.path.join(out, "model.safetensors"), weights)
    expected = {
        "input_ids": i32(ids),
        "token_type_ids": i32(types),
        "attention_mask": i32(mask),
        "labels": i32(labels),
        "last_hidden_state": f32(h),
        "pooler_output": f32(pooled),
        "logits": f32(logits),
        "loss": f32(loss.reshape(1)),
    }
    for i, s in enumerate(states):
        expected[f"hidden_states.{i}"] = f32(s)
    for name, p in model.named_parameters():
        if p.grad is not None:  # the pooler takes no part in the masked-LM loss
            expected[f"grad.{name}"] = f32(p.grad)
    write_safetensors(os.path.join(out, "expected.safetensors"), expected)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")
    print(json.dumps({"loss": loss.item(), "params": sum(p.numel() for p in model.parameters()), "out": out}))


if __name__ == "__main__":
    main()
