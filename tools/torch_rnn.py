#!/usr/bin/python3
"""PyTorch reference for moxing's LSTM and GRU (src/nn/rnn.ts): torch.nn.LSTM / torch.nn.GRU on
small random inputs, packed by length as pack_padded_sequence packs them, with their outputs and
the gradients of a weighted sum of them.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 tools/torch_rnn.py
Needs Debian's python3-torch. Writes tools/fixtures/rnn.json: for each case the module's settings,
its state dict (PyTorch's names: weight_ih_l0, weight_hh_l0_reverse, ...), the input, lengths, initial
states, and the expected output, h_n, c_n and gradients (of sum(output * w_out) + sum(h_n * w_h)
[+ sum(c_n * w_c)] with respect to the input, the initial states and every parameter).
"""
import json
import os

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tools", "fixtures", "rnn.json")

CASES = [
    # name, mode, input, hidden, layers, bidirectional, bias, batch_first, lengths (None: full), B, T, initial state
    ("lstm-bi-packed", "LSTM", 5, 4, 2, True, True, True, [3, 5, 1, 4], 4, 5, False),
    ("gru-bi-packed", "GRU", 5, 4, 2, True, True, True, [2, 5, 5, 3], 4, 5, True),
    ("lstm-seq-first-h0", "LSTM", 3, 6, 1, False, True, False, None, 3, 4, True),
    ("gru-nobias", "GRU", 3, 5, 1, False, False, True, [4, 2, 4], 3, 4, False),
    ("lstm-short-batch", "LSTM", 4, 3, 1, True, True, True, [2, 3], 2, 5, True),  # T longer than every sequence
]


def flat(t):
    return [round(float(v), 8) for v in t.detach().reshape(-1).tolist()]


def main():
    out = []
    for name, mode, I, H, L, bi, bias, bf, lengths, B, T, init in CASES:
        torch.manual_seed(len(out) + 1)
        cls = torch.nn.LSTM if mode == "LSTM" else torch.nn.GRU
        m = cls(I, H, num_layers=L, bias=bias, batch_first=bf, bidirectional=bi)
        D = 2 if bi else 1
        x = torch.randn((B, T, I) if bf else (T, B, I), requires_grad=True)
        h0 = torch.randn(L * D, B, H, requires_grad=True) if init else None
        c0 = torch.randn(L * D, B, H, requires_grad=True) if init and mode == "LSTM" else None
        hx = (h0, c0) if mode == "LSTM" and init else h0
        if lengths is not None:
            packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=bf, enforce_sorted=False)
            y, state = m(packed, hx)
            y, _ = pad_packed_sequence(y, batch_first=bf, total_length=T)
        else:
            y, state = m(x, hx)
        h_n, c_n = state if mode == "LSTM" else (state, None)
        w_out, w_h = torch.randn_like(y), torch.randn_like(h_n)
        loss = (y * w_out).sum() + (h_n * w_h).sum()
        w_c = torch.randn_like(c_n) if c_n is not None else None
        if c_n is not None:
            loss = loss + (c_n * w_c).sum()
        loss.backward()
        case = {
            "name": name, "mode": mode, "inputSize": I, "hiddenSize": H, "numLayers": L, "bidirectional": bi, "bias": bias,
            "batchFirst": bf, "lengths": lengths, "input": {"shape": list(x.shape), "data": flat(x)},
            "state_dict": {k: {"shape": list(v.shape), "data": flat(v)} for k, v in m.state_dict().items()},
            "h0": flat(h0) if h0 is not None else None, "c0": flat(c0) if c0 is not None else None,
            "output": {"shape": list(y.shape), "data": flat(y)}, "h_n": flat(h_n), "c_n": flat(c_n) if c_n is not None else None,
            "w_out": flat(w_out), "w_h": flat(w_h), "w_c": flat(w_c) if w_c is not None else None,
            "grad": {"input": flat(x.grad), **({"h0": flat(h0.grad)} if h0 is not None else {}), **({"c0": flat(c0.grad)} if c0 is not None else {}),
                     **{k: flat(p.grad) for k, p in m.named_parameters()}},
        }
        out.append(case)
    with open(OUT, "w") as f:
        json.dump({"torch": torch.__version__, "cases": out}, f)
        f.write("\n")
    print(f"wrote {len(out)} cases to {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
