"""The launch wrappers pass each kernel the arguments its .cu signature declares, on the CPU.

No GPU runs here. `launch` is replaced by a checker that parses the kernel's signature from
its source and asserts that every argument has the declared C type (float* <-> contiguous
float32 array, int <-> np.int32, unsigned long long <-> np.uint64, ...), that the launch
shape is legal, and then runs a NumPy model of the kernel that reads its arguments by the
names in the signature. The wrappers' results must equal the references: a swapped N and
C, a missing flag or a wrong stride fails here. What the CUDA code itself computes is
checked only on a GPU (tests/test_cuda_kernels.py).
"""

import re

import numpy as np
import pytest

from tinygen.ops import kernel_calls as kc
from tinygen.ops import kernels, philox
from tinygen.optim import adam_kernel

RNG = np.random.default_rng(1)
POINTERS = {"float": np.float32, "long long": np.int64, "unsigned char": np.uint8}
SCALARS = {"int": np.int32, "long long": np.int64, "float": np.float32,
           "unsigned long long": np.uint64}
_SIGNATURE = re.compile(r'extern "C" __global__ void (\w+)\((.*?)\)\s*\{', re.DOTALL)


def signatures():
    """kernel name -> [(C type, is pointer, argument name)] for every source."""
    found = {}
    for family in kernels.KERNELS:
        for name, params in _SIGNATURE.findall(kernels.source(family)):
            args = []
            for param in params.split(","):
                m = re.fullmatch(r"\s*(const\s+)?([\w ]+?)\s*(\*?)\s*(\w+)\s*", param)
                assert m, f"{name}: cannot parse parameter {param!r}"
                args.append((m.group(2), bool(m.group(3)), m.group(4)))
            found[name] = (family, args)
    return found


SIGNATURES = signatures()


def _flat(a, n):
    assert a.size >= n, f"buffer of {a.size} elements, kernel touches {n}"
    return a.reshape(-1)[:n]


def _ln_forward(a, grid, block):
    N, C = int(a["N"]), int(a["C"])
    assert grid == (N,)
    x = _flat(a["x"], N * C).reshape(N, C)
    mean = x.mean(1)
    rstd = 1 / np.sqrt(((x - mean[:, None]) ** 2).mean(1) + a["eps"])
    out = (x - mean[:, None]) * rstd[:, None]
    if a["has_weight"]:
        out = out * _flat(a["weight"], C)
    if a["has_bias"]:
        out = out + _flat(a["bias"], C)
    _flat(a["out"], N * C)[:] = out.reshape(-1)
    _flat(a["mean"], N)[:], _flat(a["rstd"], N)[:] = mean, rstd


def _ln_backward_input(a, grid, block):
    N, C = int(a["N"]), int(a["C"])
    x, g = _flat(a["x"], N * C).reshape(N, C), _flat(a["grad"], N * C).reshape(N, C)
    mean, rstd = _flat(a["mean"], N)[:, None], _flat(a["rstd"], N)[:, None]
    gx, _, _ = kc.layer_norm_backward_reference(
        g, x, mean[:, 0], rstd[:, 0], _flat(a["weight"], C) if a["has_weight"] else None)
    _flat(a["gx"], N * C)[:] = gx.reshape(-1)


def _ln_backward_params(a, grid, block):
    N, C = int(a["N"]), int(a["C"])
    assert block == (32, 8) and grid[0] * 32 >= C
    x, g = _flat(a["x"], N * C).reshape(N, C), _flat(a["grad"], N * C).reshape(N, C)
    xhat = (x - _flat(a["mean"], N)[:, None]) * _flat(a["rstd"], N)[:, None]
    slices = grid[1]
    which = (np.arange(N) // 8) % slices                 # the row slice each row falls in
    pw, pb = _flat(a["partial_w"], slices * C), _flat(a["partial_b"], slices * C)
    for y in range(slices):
        pw[y * C:(y + 1) * C] = (g * xhat)[which == y].sum(0)
        pb[y * C:(y + 1) * C] = g[which == y].sum(0)


def _elementwise(fn, inputs, out):
    def model(a, grid, block):
        n = int(a["n"])
        arrays = [_flat(a[k], n) for k in inputs]
        if "bias" in a:
            C = int(a["C"])
            arrays[1] = np.tile(_flat(a["bias"], C), n // C)
        _flat(a[out], n)[:] = fn(*arrays)
    return model


def _softmax_forward(a, grid, block):
    R, Tq, Tk = int(a["R"]), int(a["Tq"]), int(a["Tk"])
    assert grid == (R,) and block == (256,) and Tk <= 1024
    s = _flat(a["scores"], R * Tk).reshape(-1, Tq, Tk)
    _flat(a["att"], R * Tk)[:] = kc.attention_softmax_forward_reference(
        s, a["scale"], bool(a["causal"])).reshape(-1)


def _softmax_backward(a, grid, block):
    R, Tk = int(a["R"]), int(a["Tk"])
    assert grid == (R,) and block == (256,)
    att, g = _flat(a["att"], R * Tk), _flat(a["gatt"], R * Tk)
    _flat(a["gscores"], R * Tk)[:] = kc.attention_softmax_backward_reference(
        att.reshape(R, Tk), g.reshape(R, Tk), a["scale"]).reshape(-1)


def _cross_entropy(a, grid, block):
    N, V = int(a["N"]), int(a["V"])
    assert grid == (N,)
    loss, d = kc.cross_entropy_forward_backward_reference(
        _flat(a["logits"], N * V).reshape(N, V), _flat(a["target"], N), int(a["ignore_index"]))
    _flat(a["loss"], N)[:], _flat(a["dlogits"], N * V)[:] = loss, d.reshape(-1)


def _adam(a, grid, block):
    n = int(a["n"])
    x, g = _flat(a["param"], n), _flat(a["grad"], n)
    m, v = _flat(a["exp_avg"], n), _flat(a["exp_avg_sq"], n)
    wd = a["weight_decay"] * (_flat(a["decay"], n) if a["has_decay_flags"] else 1)
    if a["decoupled"]:
        x *= 1 - a["lr"] * wd
    else:
        g = g + wd * x
    m[:] = a["beta1"] * m + (1 - a["beta1"]) * g
    v[:] = a["beta2"] * v + (1 - a["beta2"]) * g * g
    x -= a["step_size"] * m / (np.sqrt(v) * a["inv_sqrt_bc2"] + a["eps"])


def _dropout(a, grid, block):
    n, p = int(a["n"]), a["p"]
    u = (philox.random_words(n, int(a["seed"]), int(a["offset"])) >> 8) * np.float32(2 ** -24)
    mask = np.where(u.astype(np.float32) >= p, a["scale"], np.float32(0))
    if "mask" in a:
        _flat(a["mask"], n)[:] = mask
    else:
        _flat(a["out"], n)[:] = _flat(a["x"], n) * mask


def _strided(a, name):
    C, H, W, N = (int(a[k]) for k in "CHWN")
    arr = a[name]
    strides = [int(a[k]) * arr.itemsize for k in ("sC", "sH", "sW", "sN")]
    return np.lib.stride_tricks.as_strided(arr, (C, H, W, N), strides)


def _im2col(a, grid, block):
    C, N, Kh, Kw, Sh, Sw, Ph, Pw, Ho, Wo = (
        int(a[k]) for k in ("C", "N", "Kh", "Kw", "Sh", "Sw", "Ph", "Pw", "Ho", "Wo"))
    padded = np.pad(_strided(a, "image"), ((0, 0), (Ph, Ph), (Pw, Pw), (0, 0)))
    cols = _flat(a["cols"], C * Kh * Kw * Ho * Wo * N).reshape(C, Kh, Kw, Ho, Wo, N)
    for i in range(Kh):
        for j in range(Kw):
            cols[:, i, j] = padded[:, i:i + Sh * (Ho - 1) + 1:Sh, j:j + Sw * (Wo - 1) + 1:Sw]


def _col2im(a, grid, block):
    C, H, W, N, Kh, Kw, Sh, Sw, Ph, Pw, Ho, Wo = (
        int(a[k]) for k in ("C", "H", "W", "N", "Kh", "Kw", "Sh", "Sw", "Ph", "Pw", "Ho", "Wo"))
    cols = _flat(a["cols"], C * Kh * Kw * Ho * Wo * N).reshape(C, Kh, Kw, Ho, Wo, N)
    padded = np.zeros((C, H + 2 * Ph + Sh, W + 2 * Pw + Sw, N), np.float32)
    for i in range(Kh):
        for j in range(Kw):
            padded[:, i:i + Sh * (Ho - 1) + 1:Sh, j:j + Sw * (Wo - 1) + 1:Sw] += cols[:, i, j]
    _strided(a, "image")[...] = padded[:, Ph:Ph + H, Pw:Pw + W]


MODELS = {
    "layer_norm_forward": _ln_forward,
    "layer_norm_backward_input": _ln_backward_input,
    "layer_norm_backward_params": _ln_backward_params,
    "gelu_forward": _elementwise(kc.gelu_forward_reference, ["x"], "out"),
    "gelu_backward": _elementwise(kc.gelu_backward_reference, ["x", "grad"], "gx"),
    "bias_gelu_forward": _elementwise(lambda x, b: kc.gelu_forward_reference(x + b),
                                      ["x", "x"], "out"),
    "bias_gelu_backward": _elementwise(lambda x, b, g: kc.gelu_backward_reference(x + b, g),
                                       ["x", "x", "grad"], "gpre"),
    "attention_softmax_forward": _softmax_forward,
    "attention_softmax_backward": _softmax_backward,
    "cross_entropy_forward_backward": _cross_entropy,
    "adam_step": _adam,
    "dropout_apply": _dropout,
    "dropout_mask": _dropout,
    "im2col": _im2col,
    "col2im": _col2im,
}
launched = []


def checked_launch(family, kernel, grid, block, args):
    assert kernel in SIGNATURES, f"{kernel} is not defined in any .cu file"
    source_family, params = SIGNATURES[kernel]
    assert family == source_family, f"{kernel} lives in {source_family}, launched as {family}"
    assert len(args) == len(params), f"{kernel}: {len(args)} arguments for {len(params)}"
    assert all(g >= 1 for g in grid) and 1 <= np.prod(block) <= 1024, (grid, block)
    named = {}
    for value, (ctype, pointer, name) in zip(args, params):
        if pointer:
            assert isinstance(value, np.ndarray) and value.dtype == POINTERS[ctype], (
                f"{kernel}: {name} must be a {ctype} array, got {type(value)} "
                f"{getattr(value, 'dtype', '')}")
            assert value.flags.c_contiguous or name == "image", f"{kernel}: {name} strided"
        else:
            assert type(value) is SCALARS[ctype], (
                f"{kernel}: {name} must be {SCALARS[ctype].__name__}, got {type(value)}")
        named[name] = value
    MODELS[kernel](named, tuple(grid), tuple(block))
    launched.append(kernel)


@pytest.fixture(autouse=True)
def fake_launch(monkeypatch):
    monkeypatch.setattr(kc, "launch", checked_launch)
    monkeypatch.setattr(adam_kernel, "launch", checked_launch)
    launched.clear()


def test_every_kernel_has_a_model():
    assert set(MODELS) == set(SIGNATURES)


def f32(*shape, scale=1.0):
    return (RNG.normal(size=shape) * scale).astype(np.float32)


def close(a, b, tol=2e-5):
    assert a.dtype == np.float32 and a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_launches(affine):
    x, g = f32(3, 13, 40, scale=2), f32(3, 13, 40)
    w, b = (f32(40), f32(40)) if affine else (None, None)
    out, mean, rstd = kc.layer_norm_forward_cuda(x, w, b, 1e-5)
    ref = kc.layer_norm_forward_reference(x, w, b, 1e-5)
    for mine, theirs in zip((out, mean, rstd), ref):
        close(mine, theirs)
    for mine, theirs in zip(kc.layer_norm_backward_cuda(g, x, mean, rstd, w, affine),
                            kc.layer_norm_backward_reference(g, x, *ref[1:], w, affine)):
        assert (mine is None) == (theirs is None)
        if mine is not None:
            close(mine, theirs, 1e-4)
    assert "layer_norm_backward_params" in launched or not affine


def test_gelu_launches():
    x, g, b = f32(7, 33, scale=3), f32(7, 33), f32(33)
    close(kc.gelu_forward_cuda(x), kc.gelu_forward_reference(x))
    close(kc.gelu_backward_cuda(x, g), kc.gelu_backward_reference(x, g))
    close(kc.bias_gelu_forward_cuda(x, b), kc.bias_gelu_forward_reference(x, b))
    for mine, theirs in zip(kc.bias_gelu_backward_cuda(x, b, g),
                            kc.bias_gelu_backward_reference(x, b, g)):
        close(mine, theirs, 1e-4)


@pytest.mark.parametrize("Tq,Tk,causal", [(6, 6, True), (2, 9, True), (5, 3, False)])
def test_attention_softmax_launches(Tq, Tk, causal):
    s, g = f32(2, 3, Tq, Tk, scale=3), f32(2, 3, Tq, Tk)
    att = kc.attention_softmax_forward_cuda(s, 0.3, causal)
    close(att, kc.attention_softmax_forward_reference(s, 0.3, causal))
    close(kc.attention_softmax_backward_cuda(att, g, 0.3),
          kc.attention_softmax_backward_reference(att, g, 0.3))


def test_cross_entropy_launches():
    logits, target = f32(10, 17, scale=3), RNG.integers(0, 17, size=10)
    target[3] = -1
    for mine, theirs in zip(kc.cross_entropy_forward_backward_cuda(logits, target, -1),
                            kc.cross_entropy_forward_backward_reference(logits, target, -1)):
        close(mine, theirs)


@pytest.mark.parametrize("decoupled,flags", [(True, True), (False, False)])
def test_adam_launches(decoupled, flags):
    n = 101
    decay = (RNG.random(n) < 0.5) if flags else None
    bufs = [f32(n), np.zeros(n, np.float32), np.zeros(n, np.float32)]
    refs = [b.copy() for b in bufs]
    for step in (1, 2):
        g = f32(n)
        hyper = {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1,
                 "decoupled": decoupled, "decay": decay}
        adam_kernel.adam_step_cuda(bufs[0], g, *bufs[1:], step, **hyper)
        adam_kernel.adam_step_reference(refs[0], g, *refs[1:], step, **hyper)
    for mine, theirs in zip(bufs, refs):
        close(mine, theirs)
    with pytest.raises(ValueError, match="flat buffer"):
        adam_kernel.adam_step_cuda(bufs[0][::2], g[::2], bufs[1][::2], bufs[2][::2], 3, 0.01)


def test_dropout_launches():
    x = f32(5, 11)
    np.testing.assert_array_equal(kc.dropout_apply_cuda(x, 0.25, 9, 4),
                                  kc.dropout_apply_reference(x, 0.25, 9, 4))
    np.testing.assert_array_equal(kc.dropout_mask_cuda((5, 11), 0.25, 9, 4, np),
                                  kc.dropout_mask_reference((5, 11), 0.25, 9, 4))


@pytest.mark.parametrize("nchw", [False, True])
def test_im2col_col2im_launches(nchw):
    shape, kernel, stride, padding, out_size = (3, 7, 6, 4), (3, 2), (2, 1), (1, 0), (4, 5)
    rows = f32(4, 3, 7, 6).transpose(1, 2, 3, 0) if nchw else f32(*shape)
    close(kc.im2col_cuda(rows, kernel, stride, padding, out_size),
          kc.im2col_reference(rows, kernel, stride, padding, out_size))
    cols = f32(3 * 3 * 2, 4 * 5 * 4)
    close(kc.col2im_cuda(cols, shape, kernel, stride, padding),
          kc.col2im_reference(cols, shape, kernel, stride, padding), 1e-5)
    with pytest.raises(ValueError, match="out_size"):
        kc.im2col_cuda(rows, kernel, stride, padding, (5, 5))
