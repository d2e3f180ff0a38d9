#!/usr/bin/python3
"""Golden PyTorch fixtures for moxing's parity tests (test/parity/parity.test.ts).

Run it with the system Python, which has torch and numpy (a pyenv `python3` may not):

    /usr/bin/python3 tools/torch_fixtures.py

It rewrites tools/fixtures/{ops,block,gpt}.json. Everything is float32 with fixed seeds, so a
re-run reproduces the same files (up to torch version differences in the last bits). The files
are committed: the tests never need torch.

Format (all three files): {"meta": {...}, ...} where every tensor is stored flat, row-major, as
    {"shape": [..], "data": [..]}            float32, rounded to 9 significant digits (exact for float32)
    {"shape": [..], "dtype": "int32", "data": [..]}
ops.json holds "cases": a list of
    {"name", "op", "args", "inputs": {name: tensor (+ "grad": true for a differentiable input)},
     "outputs": {name: tensor}, "weights": {name: tensor}, "grads": {input name: tensor}}
For each case the loss is  sum over outputs o of  sum(o * weights[o])  and "grads" holds
d loss / d input for every input marked "grad". The weights are fixed random tensors, so every
gradient is non-trivial. Each case seeds its own generator from its name, so adding a case does
not change the others.

block.json: one pre-LN GPT-2 transformer block (weights in torch.nn.Linear (out, in) layout).
gpt.json: a tiny 2-layer GPT (tied lm_head) with cross-entropy loss, its gradients, and its
parameters after 3 steps of torch.optim.AdamW.
"""

import json
import math
import os
import zlib

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


# ---- serialisation -----------------------------------------------------------------------------


def ser(t):
    """A tensor as {"shape", "data"} (flat, row-major), 9 significant digits; int32 marked."""
    t = t.detach()
    if t.dtype == torch.bool:
        t = t.float()
    if t.dtype in (torch.int64, torch.int32):
        return {"shape": list(t.shape), "dtype": "int32", "data": [int(v) for v in t.reshape(-1).tolist()]}
    assert t.dtype == torch.float32, t.dtype
    data = [float("%.9g" % v) for v in t.reshape(-1).tolist()]
    for v in data:
        assert math.isfinite(v), "fixtures must be finite"
    return {"shape": list(t.shape), "data": data}


def write(name, obj):
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, name)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path) / 1024:.1f} KiB)")


META = {
    "generator": "tools/torch_fixtures.py",
    "torch": torch.__version__,
    "dtype": "float32",
}


def gen_for(name):
    g = torch.Generator()
    g.manual_seed(zlib.crc32(name.encode()))
    return g


# ---- single-op cases -------------------------------------------------------------------------------

CASES = []


def run_case(inputs, fn, nograd, weight_gen, dtype, weights=None):
    """Forward, weighted-sum loss and backward in `dtype`; returns (leaves, outputs, weights, grads)."""
    leaves = {}
    for k, v in inputs.items():
        v = v.detach().clone()
        if v.dtype == torch.float32:
            v = v.to(dtype)
            if k not in nograd:
                v.requires_grad_(True)
        leaves[k] = v
    out = fn(**leaves)
    outs = out if isinstance(out, dict) else {"out": out}
    fresh = weights is None
    weights = {} if fresh else weights
    loss = None
    for k, o in outs.items():
        if not o.dtype.is_floating_point or not o.requires_grad:
            continue
        if fresh:
            weights[k] = torch.randn(o.shape, generator=weight_gen)
        term = (o * weights[k].to(dtype)).sum()
        loss = term if loss is None else loss + term
    grads = {}
    if loss is not None:
        loss.backward()
        for k, v in leaves.items():
            if v.requires_grad:
                assert v.grad is not None, k
                grads[k] = v.grad
    return leaves, outs, weights, grads


def case(name, op, inputs, fn, args=None, nograd=(), reference="float32", tol=None, note=None):
    """inputs: name -> tensor (float tensors get requires_grad unless listed in nograd).
    fn(**inputs) returns a tensor or a dict name -> tensor. Only float outputs enter the loss.

    reference="float64" stores the float64 result for the same float32 inputs (rounded to
    float32) instead of torch's float32 one: for ill-conditioned cases where torch's own float32
    answer is further from the exact one than the test tolerance. `tol` overrides the test's
    tolerance for the case; the float32 torch error is recorded next to it so it can be judged."""
    leaves, outs, weights, grads = run_case(inputs, fn, nograd, gen_for(name + "/weights"), torch.float32)
    entry = {"name": name, "op": op, "args": args or {}}
    if reference == "float64":
        _, outs64, _, grads64 = run_case(inputs, fn, nograd, None, torch.float64, weights)
        err = 0.0
        for a, b in list(zip(outs.values(), outs64.values())) + list(zip(grads.values(), grads64.values())):
            if a.dtype.is_floating_point:
                err = max(err, ((a.double() - b).abs() / (1e-6 + 1e-5 * b.abs())).max().item())
        outs = {k: o.float() if o.dtype == torch.float64 else o for k, o in outs64.items()}
        grads = {k: g.float() for k, g in grads64.items()}
        entry["reference"] = "float64"
        entry["torch_float32_error"] = float("%.3g" % err)  # in units of the default (1e-5, 1e-6) tolerance
    elif reference != "float32":
        raise ValueError(reference)
    if tol is not None:
        entry["tol"] = tol
    if note is not None:
        entry["note"] = note
    ser_inputs = {}
    for k, v in leaves.items():
        s = ser(v)
        if v.requires_grad:
            s["grad"] = True
        ser_inputs[k] = s
    entry.update(
        {
            "inputs": ser_inputs,
            "outputs": {k: ser(o) for k, o in outs.items()},
            "weights": {k: ser(w) for k, w in weights.items()},
            "grads": {k: ser(g) for k, g in grads.items()},
        }
    )
    CASES.append(entry)


def randn(name, *shape, scale=1.0):
    return torch.randn(*shape, generator=gen_for(name)) * scale


def uniform(name, *shape, lo=0.0, hi=1.0):
    return lo + (hi - lo) * torch.rand(*shape, generator=gen_for(name))


def away_from_zero(name, *shape, lo=0.5, hi=2.0):
    """Values with |v| in [lo, hi) and random sign: safe denominators."""
    mag = uniform(name + "/mag", *shape, lo=lo, hi=hi)
    sign = torch.where(torch.rand(*shape, generator=gen_for(name + "/sign")) < 0.5, -1.0, 1.0)
    return mag * sign


def randint(name, lo, hi, *shape):
    return torch.randint(lo, hi, shape, generator=gen_for(name))


def sdpa(q, k, v, causal=False, mask=None, scale=None):
    """torch 1.13 has no F.scaled_dot_product_attention: the same maths as moxing's composite."""
    d, T, S = q.shape[-1], q.shape[-2], k.shape[-2]
    att = (q @ k.transpose(-2, -1)) * (scale if scale is not None else 1 / math.sqrt(d))
    if causal:
        future = torch.arange(S)[None, :] > (torch.arange(T)[:, None] + (S - T))
        att = att.masked_fill(future, float("-inf"))
    if mask is not None:
        att = att.masked_fill(mask, float("-inf"))
    w = torch.softmax(att, -1)
    return w @ v, w


def build_op_cases():
    # -- binary elementwise with broadcasting --------------------------------------------------
    A, B = (3, 1, 4), (2, 4)
    case("add/bcast_3x1x4_2x4", "add", {"a": randn("add.a", *A), "b": randn("add.b", *B)}, lambda a, b: a + b)
    case("sub/bcast_2x4_3x1x4", "sub", {"a": randn("sub.a", *B), "b": randn("sub.b", *A)}, lambda a, b: a - b)
    case("mul/bcast_3x1x4_4", "mul", {"a": randn("mul.a", *A), "b": randn("mul.b", 4)}, lambda a, b: a * b)
    case("mul/bcast_3x1x4_2x4", "mul", {"a": randn("mul2.a", *A), "b": randn("mul2.b", *B)}, lambda a, b: a * b)
    case("div/bcast_3x1x4_2x4", "div", {"a": randn("div.a", *A), "b": away_from_zero("div.b", *B)}, lambda a, b: a / b)
    case("div/bcast_2x1_3x1x4", "div", {"a": randn("div2.a", 2, 1), "b": away_from_zero("div2.b", *A)}, lambda a, b: a / b)
    case(
        "pow/bcast_3x1x4_2x4",
        "pow",
        {"a": uniform("pow.a", *A, lo=0.3, hi=2.0), "b": randn("pow.b", *B)},
        lambda a, b: a**b,
    )
    case("pow/scalar_exp_3_negative_base", "pow_scalar", {"x": randn("pows.x", 3, 4)}, lambda x: x**3, {"exponent": 3})
    case("pow/scalar_exp_2.5", "pow_scalar", {"x": uniform("pows2.x", 3, 4, lo=0.2, hi=2)}, lambda x: x**2.5, {"exponent": 2.5})
    case("pow/scalar_base_2", "rpow_scalar", {"x": randn("rpow.x", 3, 4)}, lambda x: 2.0**x, {"base": 2.0})
    case("add/scalar", "add_scalar", {"x": randn("adds.x", 2, 3)}, lambda x: x + 2.5, {"scalar": 2.5})
    case("sub/scalar_rsub", "rsub_scalar", {"x": randn("rsub.x", 2, 3)}, lambda x: 1.0 - x, {"scalar": 1.0})
    case("mul/scalar", "mul_scalar", {"x": randn("muls.x", 2, 3)}, lambda x: x * -3.0, {"scalar": -3.0})
    case("div/scalar_rdiv", "rdiv_scalar", {"x": away_from_zero("rdiv.x", 2, 3)}, lambda x: 1.0 / x, {"scalar": 1.0})
    case("div/scalar", "div_scalar", {"x": randn("divs.x", 2, 3)}, lambda x: x / 7.0, {"scalar": 7.0})
    case(
        "maximum/bcast_3x1x4_2x4",
        "maximum",
        {"a": randn("max.a", *A), "b": randn("max.b", *B)},
        lambda a, b: torch.maximum(a, b),
    )
    case(
        "minimum/bcast_3x1x4_2x4",
        "minimum",
        {"a": randn("min.a", *A), "b": randn("min.b", *B)},
        lambda a, b: torch.minimum(a, b),
    )
    # Ties: PyTorch splits the gradient evenly between equal operands.
    ta = randn("maxtie.a", 3, 4)
    tb = torch.where(torch.arange(12).reshape(3, 4) % 3 == 0, ta, randn("maxtie.b", 3, 4))
    case("maximum/ties", "maximum", {"a": ta, "b": tb}, lambda a, b: torch.maximum(a, b))
    case("minimum/ties", "minimum", {"a": ta, "b": tb}, lambda a, b: torch.minimum(a, b))
    case(
        "clamp/both",
        "clamp",
        {"x": randn("clamp.x", 3, 5)},
        lambda x: torch.clamp(x, -0.5, 0.7),
        {"min": -0.5, "max": 0.7},
    )

    # -- unary -------------------------------------------------------------------------------------
    x = randn("unary.x", 3, 5, scale=1.5)
    pos = uniform("unary.pos", 3, 5, lo=0.1, hi=3.0)
    with_zeros = x.clone()
    with_zeros[0, :2] = 0.0
    for op, inp, fn in [
        ("neg", x, torch.neg),
        ("exp", x, torch.exp),
        ("log", pos, torch.log),
        ("sqrt", pos, torch.sqrt),
        ("tanh", x, torch.tanh),
        ("sigmoid", x, torch.sigmoid),
        ("relu", with_zeros, torch.relu),
        ("abs", with_zeros, torch.abs),
        ("sin", x, torch.sin),
        ("cos", x, torch.cos),
        ("erf", x, torch.erf),
        ("rsqrt", pos, torch.rsqrt),
        ("square", x, torch.square),
    ]:
        case(f"{op}/3x5", op, {"x": inp}, fn)
    # erf near zero and in the tails, where approximations are weakest.
    erf_x = torch.tensor([-4.0, -2.5, -1.0, -0.3, -0.01, -1e-4, 0.0, 1e-4, 0.01, 0.05, 0.3, 0.7, 1.5, 3.0, 5.0])
    case("erf/range", "erf", {"x": erf_x}, torch.erf)
    case("gelu/exact", "gelu", {"x": randn("gelu.x", 4, 6, scale=2)}, lambda x: F.gelu(x), {"approximate": "none"})
    case(
        "gelu/tanh",
        "gelu",
        {"x": randn("gelut.x", 4, 6, scale=2)},
        lambda x: F.gelu(x, approximate="tanh"),
        {"approximate": "tanh"},
    )

    # -- where / masked_fill -------------------------------------------------------------------------
    cond = (torch.rand(3, 1, generator=gen_for("where.c")) < 0.5).float()
    cond[0, 0], cond[1, 0] = 1.0, 0.0
    case(
        "where/bcast_cond3x1_a3x4_b4",
        "where",
        {"cond": cond, "a": randn("where.a", 3, 4), "b": randn("where.b", 4)},
        lambda cond, a, b: torch.where(cond != 0, a, b),
        nograd=("cond",),
    )
    cond2 = (torch.rand(3, 4, generator=gen_for("where2.c")) < 0.5).float()
    case(
        "where/scalar_other",
        "where_scalar",
        {"cond": cond2, "a": randn("where2.a", 3, 4)},
        lambda cond, a: torch.where(cond != 0, a, torch.tensor(0.25)),
        {"other": 0.25},
        nograd=("cond",),
    )
    mask = (torch.rand(1, 4, generator=gen_for("mf.m")) < 0.5).float()
    mask[0, 0], mask[0, 1] = 1.0, 0.0
    case(
        "masked_fill/bcast_mask1x4",
        "masked_fill",
        {"x": randn("mf.x", 3, 4), "mask": mask},
        lambda x, mask: x.masked_fill(mask != 0, -2.0),
        {"value": -2.0},
        nograd=("mask",),
    )

    # -- reductions -----------------------------------------------------------------------------------
    r = randn("reduce.x", 2, 3, 4)
    for dim, keep in [(None, False), (1, False), ([0, 2], True), (-1, True), ([0, 1, 2], False)]:
        tag = "all" if dim is None else str(dim).replace(" ", "")
        kw = {} if dim is None else {"dim": dim, "keepdim": keep}
        case(f"sum/{tag}_keep{int(keep)}", "sum", {"x": r}, lambda x, kw=kw: x.sum(**kw), {"dim": dim, "keepdim": keep})
        case(f"mean/{tag}_keep{int(keep)}", "mean", {"x": r}, lambda x, kw=kw: x.mean(**kw), {"dim": dim, "keepdim": keep})
    for dim, keep in [(None, False), (1, False), ([0, 2], True), (-1, True)]:
        tag = "all" if dim is None else str(dim).replace(" ", "")
        d = tuple(range(3)) if dim is None else dim
        case(f"max/{tag}_keep{int(keep)}", "max", {"x": r}, lambda x, d=d, k=keep: torch.amax(x, d, k), {"dim": dim, "keepdim": keep})
    case("min/-1_keep0", "min", {"x": r}, lambda x: torch.amin(x, -1), {"dim": -1, "keepdim": False})
    # Tied maxima share the gradient equally (torch.amax semantics).
    tied = torch.tensor([[1.0, 3.0, 3.0, -2.0], [0.5, 0.5, 0.5, 0.5], [-1.0, 2.0, 0.0, 2.0]])
    case("max/ties_dim1", "max", {"x": tied}, lambda x: torch.amax(x, 1), {"dim": 1, "keepdim": False})
    case("max/ties_all", "max", {"x": tied}, lambda x: torch.amax(x, (0, 1)), {"dim": None, "keepdim": False})
    for dim, keep, corr in [(1, False, 0), (1, True, 1), ([0, 2], True, 0), ([0, 2], False, 1), (None, False, 1), (-1, False, 0)]:
        tag = "all" if dim is None else str(dim).replace(" ", "")
        d = tuple(range(3)) if dim is None else dim
        case(
            f"var/{tag}_keep{int(keep)}_corr{corr}",
            "var",
            {"x": r},
            lambda x, d=d, k=keep, c=corr: torch.var(x, d, unbiased=bool(c), keepdim=k),
            {"dim": dim, "keepdim": keep, "correction": corr},
        )
    case("std/-1_corr1", "std", {"x": r}, lambda x: torch.std(x, -1, unbiased=True), {"dim": -1, "keepdim": False, "correction": 1})
    # A large common offset: variance by cancellation needs care.
    case("var/offset_mean", "var", {"x": r + 10.0}, lambda x: torch.var(x, -1, unbiased=False), {"dim": -1, "keepdim": False, "correction": 0})

    # -- matmul ------------------------------------------------------------------------------------------
    mm = lambda a, b: a @ b  # noqa: E731
    case("matmul/2d", "matmul", {"a": randn("mm.a", 3, 4), "b": randn("mm.b", 4, 5)}, mm)
    case("matmul/batched", "matmul", {"a": randn("mmb.a", 2, 3, 4), "b": randn("mmb.b", 2, 4, 5)}, mm)
    case("matmul/bcast_batch", "matmul", {"a": randn("mmbb.a", 2, 1, 3, 4), "b": randn("mmbb.b", 3, 4, 5)}, mm)
    case("matmul/3d_by_2d_shared_weight", "matmul", {"a": randn("mm32.a", 2, 3, 4), "b": randn("mm32.b", 4, 5)}, mm)
    case("matmul/2d_by_3d", "matmul", {"a": randn("mm23.a", 3, 4), "b": randn("mm23.b", 2, 4, 5)}, mm)
    case("matmul/1d_by_2d", "matmul", {"a": randn("mm12.a", 4), "b": randn("mm12.b", 4, 5)}, mm)
    case("matmul/2d_by_1d", "matmul", {"a": randn("mm21.a", 3, 4), "b": randn("mm21.b", 4)}, mm)
    case("matmul/1d_by_1d", "matmul", {"a": randn("mm11.a", 4), "b": randn("mm11.b", 4)}, mm)
    case("matmul/3d_by_1d", "matmul", {"a": randn("mm31.a", 2, 3, 4), "b": randn("mm31.b", 4)}, mm)
    case("matmul/1d_by_3d", "matmul", {"a": randn("mm13.a", 4), "b": randn("mm13.b", 2, 4, 5)}, mm)
    # Inputs stored transposed: a is (4, 3) and b (5, 4); the op multiplies a.T @ b.T.
    case("matmul/transposed_both", "matmul_tt", {"a": randn("mmtt.a", 4, 3), "b": randn("mmtt.b", 5, 4)}, lambda a, b: a.T @ b.T)
    case(
        "matmul/batched_transposed_b",
        "matmul_bt",
        {"a": randn("mmbt.a", 2, 3, 4), "b": randn("mmbt.b", 2, 5, 4)},
        lambda a, b: a @ b.transpose(-2, -1),
    )
    case(
        "matmul/batched_transposed_a",
        "matmul_at",
        {"a": randn("mmat.a", 2, 4, 3), "b": randn("mmat.b", 2, 4, 5)},
        lambda a, b: a.transpose(-2, -1) @ b,
    )

    # -- softmax family ----------------------------------------------------------------------------------
    s = randn("softmax.x", 2, 3, 5, scale=2)
    for dim in (0, 1, -1):
        case(f"softmax/dim{dim}", "softmax", {"x": s}, lambda x, d=dim: torch.softmax(x, d), {"dim": dim})
        case(f"log_softmax/dim{dim}", "log_softmax", {"x": s}, lambda x, d=dim: torch.log_softmax(x, d), {"dim": dim})
    big = randn("softmax.big", 3, 6, scale=30)
    case("softmax/large_logits", "softmax", {"x": big}, lambda x: torch.softmax(x, -1), {"dim": -1})
    case("log_softmax/large_logits", "log_softmax", {"x": big}, lambda x: torch.log_softmax(x, -1), {"dim": -1})
    # Input stored (5, 2, 3) and permuted to (2, 3, 5): a non-contiguous input on the last dim.
    case(
        "softmax/permuted_input",
        "softmax_permuted",
        {"x": randn("softmax.perm", 5, 2, 3)},
        lambda x: torch.softmax(x.permute(1, 2, 0), -1),
        {"dim": -1},
    )

    # -- layer norm ----------------------------------------------------------------------------------------
    C = 8
    ln_w = 1 + 0.3 * randn("ln.w", C)
    ln_b = 0.2 * randn("ln.b", C)
    case(
        "layer_norm/affine",
        "layer_norm",
        {"x": randn("ln.x", 2, 3, C, scale=1.5), "weight": ln_w, "bias": ln_b},
        lambda x, weight, bias: F.layer_norm(x, (C,), weight, bias, 1e-5),
        {"eps": 1e-5},
    )
    case(
        "layer_norm/no_affine",
        "layer_norm",
        {"x": randn("ln2.x", 4, C)},
        lambda x: F.layer_norm(x, (C,), None, None, 1e-5),
        {"eps": 1e-5},
    )
    case(
        "layer_norm/eps1e-3_offset_mean",
        "layer_norm",
        {"x": randn("ln3.x", 3, C, scale=0.1) + 4.0, "weight": ln_w, "bias": ln_b},
        lambda x, weight, bias: F.layer_norm(x, (C,), weight, bias, 1e-3),
        {"eps": 1e-3},
        reference="float64",
        tol={"rtol": 1e-4, "atol": 1e-5},
        note="mean 4, std 0.1: float32 rounding of x - mean is ~1e-6 relative to the spread, so torch's own "
        "float32 result is ~3e-5 off the exact one. Checked against the float64 result at 1e-4: a "
        "variance computed as E[x^2] - E[x]^2 in float32 is still caught.",
    )
    # The input is rows 1.. of a larger tensor: a contiguous view with a non-zero offset.
    case(
        "layer_norm/sliced_input",
        "layer_norm_sliced",
        {"x": randn("ln4.x", 4, C), "weight": ln_w, "bias": ln_b},
        lambda x, weight, bias: F.layer_norm(x[1:], (C,), weight, bias, 1e-5),
        {"eps": 1e-5, "start": 1},
    )
    case(
        "gelu/tanh_sliced_input",
        "gelu_sliced",
        {"x": randn("gelu4.x", 4, 6)},
        lambda x: F.gelu(x[1:], approximate="tanh"),
        {"approximate": "tanh", "start": 1},
    )

    # -- lookups and layout -------------------------------------------------------------------------------
    case(
        "embedding/repeated_ids",
        "embedding",
        {"weight": randn("emb.w", 10, 4), "ids": torch.tensor([[1, 3, 3, 9, 0], [3, 7, 1, 1, 3]])},
        lambda weight, ids: F.embedding(ids, weight),
    )
    case(
        "embedding/1d_ids",
        "embedding",
        {"weight": randn("emb2.w", 6, 3), "ids": torch.tensor([5, 0, 5, 2])},
        lambda weight, ids: F.embedding(ids, weight),
    )
    case(
        "index/int_rows",
        "index_tensor",
        {"x": randn("idx.x", 5, 2, 3), "ids": torch.tensor([4, 0, 4, 2])},
        lambda x, ids: x[ids],
    )
    case("index/number", "index_number", {"x": randn("idxn.x", 4, 3)}, lambda x: x[-2], {"i": -2})
    case(
        "cat/dim1_three",
        "cat",
        {"a": randn("cat.a", 2, 1, 4), "b": randn("cat.b", 2, 3, 4), "c": randn("cat.c", 2, 2, 4)},
        lambda a, b, c: torch.cat([a, b, c], 1),
        {"dim": 1},
    )
    case(
        "cat/dim-1",
        "cat",
        {"a": randn("cat2.a", 3, 2), "b": randn("cat2.b", 3, 5)},
        lambda a, b: torch.cat([a, b], -1),
        {"dim": -1},
    )
    case(
        "cat/dim0",
        "cat",
        {"a": randn("cat3.a", 1, 3), "b": randn("cat3.b", 2, 3)},
        lambda a, b: torch.cat([a, b], 0),
        {"dim": 0},
    )
    for dim in (0, 1, -1):
        case(
            f"stack/dim{dim}",
            "stack",
            {"a": randn(f"stack{dim}.a", 3, 4), "b": randn(f"stack{dim}.b", 3, 4), "c": randn(f"stack{dim}.c", 3, 4)},
            lambda a, b, c, d=dim: torch.stack([a, b, c], d),
            {"dim": dim},
        )
    case(
        "split/sizes_dim-1",
        "split",
        {"x": randn("split.x", 2, 6)},
        lambda x: dict(zip(["p0", "p1", "p2"], torch.split(x, [1, 2, 3], -1))),
        {"split": [1, 2, 3], "dim": -1},
    )
    case(
        "split/int_dim0_remainder",
        "split",
        {"x": randn("split2.x", 10, 3)},
        lambda x: dict(zip(["p0", "p1", "p2"], torch.split(x, 4, 0))),
        {"split": 4, "dim": 0},
    )
    case(
        "chunk/3_dim1",
        "chunk",
        {"x": randn("chunk.x", 2, 7)},
        lambda x: dict(zip(["p0", "p1", "p2"], torch.chunk(x, 3, 1))),
        {"chunks": 3, "dim": 1},
    )
    # Slices: a list of (dim, start, end, step) applied in order, with Python slice semantics.
    for name, slices, fn in [
        ("slice/step2_step3", [[0, 1, 6, 2], [1, None, None, 3]], lambda x: x[1:6:2, ::3]),
        ("slice/negative_start", [[0, -4, None, 1], [1, 1, None, 1]], lambda x: x[-4:, 1:]),
        ("slice/end_clamped_step2", [[1, 2, 100, 2]], lambda x: x[:, 2:100:2]),
    ]:
        case(name, "slice", {"x": randn("slice.x", 6, 7)}, fn, {"slices": slices})
    case("narrow/dim1", "narrow", {"x": randn("narrow.x", 3, 6)}, lambda x: x.narrow(1, 2, 3), {"dim": 1, "start": 2, "length": 3})
    case(
        "slice/then_sum",
        "slice_sum",
        {"x": randn("slicesum.x", 4, 6, 3)},
        lambda x: x[:, 1::2].sum(1),
        {"dim": 1, "start": 1, "step": 2, "sum_dim": 1},
    )
    case(
        "permute/then_sum",
        "permute_sum",
        {"x": randn("perm.x", 2, 3, 4)},
        lambda x: x.permute(2, 0, 1).sum(1),
        {"dims": [2, 0, 1], "sum_dim": 1},
    )
    case(
        "transpose/then_mean_keepdim",
        "transpose_mean",
        {"x": randn("tr.x", 2, 3, 4)},
        lambda x: x.transpose(0, 2).mean(-1, keepdim=True),
        {"dim0": 0, "dim1": 2, "mean_dim": -1},
    )
    case(
        "permute/then_max",
        "permute_max",
        {"x": randn("permmax.x", 2, 3, 4)},
        lambda x: torch.amax(x.permute(1, 2, 0), -1),
        {"dims": [1, 2, 0], "max_dim": -1},
    )
    case(
        "permute/then_reshape",
        "permute_reshape",
        {"x": randn("permre.x", 2, 3, 4)},
        lambda x: x.permute(1, 0, 2).reshape(3, 8),
        {"dims": [1, 0, 2], "shape": [3, 8]},
    )
    case(
        "expand/3x1_to_2x3x4",
        "expand",
        {"x": randn("expand.x", 3, 1)},
        lambda x: x.expand(2, 3, 4),
        {"shape": [2, 3, 4]},
    )
    case(
        "unsqueeze_squeeze",
        "unsqueeze_squeeze",
        {"x": randn("unsq.x", 3, 1, 4)},
        lambda x: x.squeeze(1).unsqueeze(0).unsqueeze(-1),
    )
    case("flatten/1", "flatten", {"x": randn("flat.x", 2, 3, 4)}, lambda x: x.flatten(1), {"start": 1})
    case(
        "compare/bcast_no_grad",
        "compare",
        {"a": torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -3.0, 2.0], [0.0, 0.25, 2.0, -1.0]]), "b": torch.tensor([0.5, 1.0, 2.0, -1.0])},
        lambda a, b: {
            "eq": a == b,
            "ne": a != b,
            "lt": a < b,
            "le": a <= b,
            "gt": a > b,
            "ge": a >= b,
            "argmax": torch.argmax(a, 1),
        },
        nograd=("a", "b"),
    )

    # -- losses and layers --------------------------------------------------------------------------------------
    logits = randn("ce.logits", 6, 5, scale=2)
    targets = torch.tensor([0, 4, 2, 2, 1, 3])
    with_ignored = torch.tensor([0, -100, 2, 2, -100, 3])
    for red in ("mean", "sum", "none"):
        case(
            f"cross_entropy/{red}",
            "cross_entropy",
            {"logits": logits, "targets": targets},
            lambda logits, targets, r=red: F.cross_entropy(logits, targets, reduction=r),
            {"reduction": red},
        )
        case(
            f"cross_entropy/ignore_default_{red}",
            "cross_entropy",
            {"logits": logits, "targets": with_ignored},
            lambda logits, targets, r=red: F.cross_entropy(logits, targets, reduction=r),
            {"reduction": red},
        )
        case(
            f"cross_entropy/smoothing0.1_ignore_{red}",
            "cross_entropy",
            {"logits": logits, "targets": with_ignored},
            lambda logits, targets, r=red: F.cross_entropy(logits, targets, reduction=r, label_smoothing=0.1),
            {"reduction": red, "labelSmoothing": 0.1},
        )
    # Logits are rows 2.. of a larger tensor: a contiguous view with a non-zero offset.
    case(
        "cross_entropy/sliced_logits_smoothing_sum",
        "cross_entropy_sliced",
        {"logits": randn("ce4.logits", 5, 5, scale=2), "targets": torch.tensor([3, 0, 4])},
        lambda logits, targets: F.cross_entropy(logits[2:], targets, reduction="sum", label_smoothing=0.1),
        {"reduction": "sum", "labelSmoothing": 0.1, "start": 2},
    )
    case(
        "cross_entropy/ignore_index_2_mean",
        "cross_entropy",
        {"logits": logits, "targets": targets},
        lambda logits, targets: F.cross_entropy(logits, targets, ignore_index=2),
        {"reduction": "mean", "ignoreIndex": 2},
    )
    case(
        "cross_entropy/smoothing0.2_mean",
        "cross_entropy",
        {"logits": logits, "targets": targets},
        lambda logits, targets: F.cross_entropy(logits, targets, label_smoothing=0.2),
        {"reduction": "mean", "labelSmoothing": 0.2},
    )
    # (B, T, C) logits with (B, T) targets, as a language model uses it (torch wants classes in dim 1).
    case(
        "cross_entropy/3d_logits_none",
        "cross_entropy",
        {"logits": randn("ce3.logits", 2, 3, 5), "targets": torch.tensor([[1, 0, 4], [2, -100, 2]])},
        lambda logits, targets: F.cross_entropy(logits.reshape(-1, 5), targets.reshape(-1), reduction="none").reshape(2, 3),
        {"reduction": "none"},
    )
    case(
        "cross_entropy/3d_logits_mean",
        "cross_entropy",
        {"logits": randn("ce3.logits", 2, 3, 5), "targets": torch.tensor([[1, 0, 4], [2, -100, 2]])},
        lambda logits, targets: F.cross_entropy(logits.reshape(-1, 5), targets.reshape(-1)),
        {"reduction": "mean"},
    )
    case(
        "linear/bias_3d_input",
        "linear",
        {"x": randn("lin.x", 2, 3, 4), "weight": randn("lin.w", 5, 4, scale=0.5), "bias": randn("lin.b", 5)},
        lambda x, weight, bias: F.linear(x, weight, bias),
    )
    case(
        "linear/no_bias",
        "linear",
        {"x": randn("lin2.x", 3, 4), "weight": randn("lin2.w", 6, 4, scale=0.5)},
        lambda x, weight: F.linear(x, weight),
    )
    case(
        "sdpa/causal",
        "sdpa",
        {"q": randn("sdpa.q", 2, 2, 5, 4), "k": randn("sdpa.k", 2, 2, 5, 4), "v": randn("sdpa.v", 2, 2, 5, 4)},
        lambda q, k, v: dict(zip(["out", "weights"], sdpa(q, k, v, causal=True))),
        {"causal": True},
    )
    case(
        "sdpa/causal_fewer_queries",
        "sdpa",
        {"q": randn("sdpa2.q", 1, 2, 3, 4), "k": randn("sdpa2.k", 1, 2, 5, 4), "v": randn("sdpa2.v", 1, 2, 5, 4)},
        lambda q, k, v: dict(zip(["out", "weights"], sdpa(q, k, v, causal=True))),
        {"causal": True},
    )
    am = torch.tensor([[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]]).bool()
    case(
        "sdpa/attn_mask_scale",
        "sdpa",
        {
            "q": randn("sdpa3.q", 2, 3, 4),
            "k": randn("sdpa3.k", 2, 4, 4),
            "v": randn("sdpa3.v", 2, 4, 4),
            "mask": am.float(),
        },
        lambda q, k, v, mask: dict(zip(["out", "weights"], sdpa(q, k, v, mask=mask != 0, scale=0.3))),
        {"causal": False, "scale": 0.3},
        nograd=("mask",),
    )


# ---- GPT pieces, written with exactly the ops moxing composes ------------------------------------------


def gpt_block(x, p, pre, n_head):
    """Pre-LN GPT-2 block: x + attn(ln1(x)); x + mlp(ln2(x))."""
    B, T, C = x.shape
    h = F.layer_norm(x, (C,), p[pre + "ln_1.weight"], p[pre + "ln_1.bias"], 1e-5)
    qkv = F.linear(h, p[pre + "attn.c_attn.weight"], p[pre + "attn.c_attn.bias"])
    q, k, v = qkv.split(C, 2)
    heads = lambda t: t.reshape(B, T, n_head, C // n_head).transpose(1, 2)  # noqa: E731
    y, _ = sdpa(heads(q), heads(k), heads(v), causal=True)
    y = y.transpose(1, 2).reshape(B, T, C)
    x = x + F.linear(y, p[pre + "attn.c_proj.weight"], p[pre + "attn.c_proj.bias"])
    h = F.layer_norm(x, (C,), p[pre + "ln_2.weight"], p[pre + "ln_2.bias"], 1e-5)
    h = F.gelu(F.linear(h, p[pre + "mlp.c_fc.weight"], p[pre + "mlp.c_fc.bias"]), approximate="tanh")
    return x + F.linear(h, p[pre + "mlp.c_proj.weight"], p[pre + "mlp.c_proj.bias"])


def block_params(g, pre, C, std):
    return {
        pre + "ln_1.weight": 1 + 0.1 * torch.randn(C, generator=g),
        pre + "ln_1.bias": 0.1 * torch.randn(C, generator=g),
        pre + "attn.c_attn.weight": std * torch.randn(3 * C, C, generator=g),
        pre + "attn.c_attn.bias": 0.1 * torch.randn(3 * C, generator=g),
        pre + "attn.c_proj.weight": std * torch.randn(C, C, generator=g),
        pre + "attn.c_proj.bias": 0.1 * torch.randn(C, generator=g),
        pre + "ln_2.weight": 1 + 0.1 * torch.randn(C, generator=g),
        pre + "ln_2.bias": 0.1 * torch.randn(C, generator=g),
        pre + "mlp.c_fc.weight": std * torch.randn(4 * C, C, generator=g),
        pre + "mlp.c_fc.bias": 0.1 * torch.randn(4 * C, generator=g),
        pre + "mlp.c_proj.weight": std * torch.randn(C, 4 * C, generator=g),
        pre + "mlp.c_proj.bias": 0.1 * torch.randn(C, generator=g),
    }


def build_block():
    B, T, C, H = 2, 8, 32, 4
    g = gen_for("block")
    params = {k: v.requires_grad_(True) for k, v in block_params(g, "", C, 1 / math.sqrt(C)).items()}
    x = torch.randn(B, T, C, generator=g).requires_grad_(True)
    out = gpt_block(x, params, "", H)
    w = torch.randn(out.shape, generator=g)
    (out * w).sum().backward()
    write(
        "block.json",
        {
            "meta": {**META, "B": B, "T": T, "n_embd": C, "n_head": H, "eps": 1e-5, "gelu": "tanh", "loss": "sum(out * weight)"},
            "params": {k: ser(v) for k, v in params.items()},
            "x": ser(x),
            "out": ser(out),
            "weight": ser(w),
            "grads": {"x": ser(x.grad), **{k: ser(v.grad) for k, v in params.items()}},
        },
    )


def gpt_forward(idx, p, n_layer, n_head):
    B, T = idx.shape
    x = F.embedding(idx, p["wte.weight"]) + F.embedding(torch.arange(T), p["wpe.weight"])
    for i in range(n_layer):
        x = gpt_block(x, p, f"h.{i}.", n_head)
    x = F.layer_norm(x, (x.shape[-1],), p["ln_f.weight"], p["ln_f.bias"], 1e-5)
    return F.linear(x, p["wte.weight"])  # lm_head tied to the token embedding


def build_gpt():
    V, BLOCK, C, H, L, B = 16, 8, 16, 2, 2, 2
    g = gen_for("gpt")
    p = {"wte.weight": 0.5 * torch.randn(V, C, generator=g), "wpe.weight": 0.2 * torch.randn(BLOCK, C, generator=g)}
    for i in range(L):
        p.update(block_params(g, f"h.{i}.", C, 0.3))
    p["ln_f.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
    p["ln_f.bias"] = 0.1 * torch.randn(C, generator=g)
    for v in p.values():
        v.requires_grad_(True)
    tokens = torch.randint(0, V, (B, BLOCK + 1), generator=g)
    idx, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
    initial = {k: ser(v) for k, v in p.items()}

    logits = gpt_forward(idx, p, L, H)
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    loss.backward()
    grads = {k: ser(v.grad) for k, v in p.items()}
    first = {"logits": ser(logits), "loss": loss.item()}

    hp = {"lr": 1e-2, "betas": [0.9, 0.95], "weight_decay": 0.1, "eps": 1e-8, "steps": 3}
    opt = torch.optim.AdamW(list(p.values()), lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["eps"], weight_decay=hp["weight_decay"])
    losses = []
    for _ in range(hp["steps"]):
        opt.zero_grad(set_to_none=True)
        step_loss = F.cross_entropy(gpt_forward(idx, p, L, H).reshape(-1, V), targets.reshape(-1))
        step_loss.backward()
        losses.append(step_loss.item())
        opt.step()
    final_loss = F.cross_entropy(gpt_forward(idx, p, L, H).reshape(-1, V), targets.reshape(-1)).item()

    write(
        "gpt.json",
        {
            "meta": {**META, "vocab_size": V, "block_size": BLOCK, "n_embd": C, "n_head": H, "n_layer": L, "B": B, "tied_lm_head": True},
            "idx": ser(idx),
            "targets": ser(targets),
            "params": initial,
            "logits": first["logits"],
            "loss": float("%.9g" % first["loss"]),
            "grads": grads,
            "adamw": {
                **hp,
                "step_losses": [float("%.9g" % v) for v in losses],
                "final_loss": float("%.9g" % final_loss),
                # The key bias cannot change attention (q·(k + b) shifts every score of a query by
                # the same q·b, which softmax ignores): its gradient is exactly 0 in exact
                # arithmetic and pure float32 rounding noise in practice, and Adam normalises that
                # noise into +-lr steps of arbitrary sign. Those elements ([start, end) of each
                # c_attn.bias) can only be checked to lie within the reach of the AdamW steps.
                "noise_dominated": {f"h.{i}.attn.c_attn.bias": [C, 2 * C] for i in range(L)},
                "params": {k: ser(v) for k, v in p.items()},
            },
        },
    )


def main():
    build_op_cases()
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    write("ops.json", {"meta": {**META, "loss": "sum over outputs of sum(output * weights[output])"}, "cases": CASES})
    build_block()
    build_gpt()


if __name__ == "__main__":
    main()
