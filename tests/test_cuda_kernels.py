"""Every CUDA kernel against its reference, forward and backward, on a real GPU.

Skipped without one (the CuPy emulator of the test suite runs no kernels). The kernels are
float32 only; each is compared with its reference computed in float64 on the same inputs,
over shapes that are not multiples of the block sizes (32, 256, 1024 threads; 4 elements
per dropout thread; 32 x 8 layer_norm parameter blocks). Run on a GPU with
    PYTHONPATH=$PWD python -m pytest -q tests/test_cuda_kernels.py
(docs/gpu_kernels.md). Until a kernel passes here, it stays switched off by default.
"""

import numpy as np
import pytest

from tinygen import backend
from tinygen.ops import kernel_calls as kc
from tinygen.ops import kernels, philox
from tinygen.optim import adam_kernel


def _real_gpu():
    try:
        import cupy
        return backend.cp is cupy and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001  no CuPy, or no driver
        return False


pytestmark = pytest.mark.skipif(not _real_gpu(), reason="needs a real GPU with CuPy")
cp = backend.cp
RNG = np.random.default_rng(0)
RTOL, ATOL = 2e-5, 2e-6            # float32 kernel vs float64 reference


def gpu(a, dtype=np.float32):
    return cp.asarray(np.asarray(a, dtype=dtype))


def ref64(a):
    """A float64 copy on the GPU, for the reference."""
    return cp.asarray(a, dtype=cp.float64)


def close(kernel_out, reference_out, rtol=RTOL, atol=ATOL):
    assert kernel_out.dtype == np.float32
    np.testing.assert_allclose(cp.asnumpy(kernel_out), cp.asnumpy(reference_out),
                               rtol=rtol, atol=atol)


@pytest.fixture
def switched_on():
    """Every kernel switched on for the test (dispatch takes the kernel), restored after."""
    before = {n for n in kernels.KERNELS if kernels.enabled(n)}
    kernels.enable()
    yield
    kernels.disable()
    kernels.enable(before)


# ---- layer_norm ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 5, 385), (1000, 64), (5003, 33),
                                   (7, 1031), (3, 4100)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(shape, affine):
    x = gpu(RNG.normal(size=shape) * 2 + 3)
    g = gpu(RNG.normal(size=shape))
    w = gpu(RNG.normal(size=shape[-1:])) if affine else None
    b = gpu(RNG.normal(size=shape[-1:])) if affine else None
    w64, b64 = (ref64(w), ref64(b)) if affine else (None, None)
    out, mean, rstd = kc.layer_norm_forward_cuda(x, w, b, 1e-5)
    out_r, mean_r, rstd_r = kc.layer_norm_forward_reference(ref64(x), w64, b64, 1e-5)
    close(out, out_r, atol=2e-5)
    close(mean, mean_r)
    close(rstd, rstd_r, rtol=1e-4)
    gx, gw, gb = kc.layer_norm_backward_cuda(g, x, mean, rstd, w, has_bias=affine)
    gx_r, gw_r, gb_r = kc.layer_norm_backward_reference(ref64(g), ref64(x), mean_r, rstd_r,
                                                        w64, has_bias=affine)
    close(gx, gx_r, rtol=1e-4, atol=1e-4)
    if affine:
        scale = np.sqrt(shape[0] * (shape[1] if len(shape) == 3 else 1))   # sum over rows
        close(gw, gw_r, rtol=1e-4, atol=1e-5 * scale)
        close(gb, gb_r, rtol=1e-4, atol=1e-5 * scale)
    else:
        assert gw is None and gb is None


def test_layer_norm_dispatch(switched_on):
    x = gpu(RNG.normal(size=(9, 50)))
    out, _, _ = kc.layer_norm_forward(x)
    cp.testing.assert_array_equal(out, kc.layer_norm_forward_cuda(x)[0])


# ---- GELU and bias + GELU ------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 255, 257, 100_003])
def test_gelu(n):
    x, g = gpu(RNG.normal(size=n) * 3), gpu(RNG.normal(size=n))
    close(kc.gelu_forward_cuda(x), kc.gelu_forward_reference(ref64(x)))
    close(kc.gelu_backward_cuda(x, g), kc.gelu_backward_reference(ref64(x), ref64(g)))


@pytest.mark.parametrize("shape", [(1, 1), (33, 97), (4, 7, 1536)])
def test_bias_gelu(shape):
    x, g = gpu(RNG.normal(size=shape) * 3), gpu(RNG.normal(size=shape))
    b = gpu(RNG.normal(size=shape[-1]))
    close(kc.bias_gelu_forward_cuda(x, b), kc.bias_gelu_forward_reference(ref64(x), ref64(b)))
    gx, gb = kc.bias_gelu_backward_cuda(x, b, g)
    gx_r, gb_r = kc.bias_gelu_backward_reference(ref64(x), ref64(b), ref64(g))
    close(gx, gx_r)
    close(gb, gb_r, rtol=1e-4, atol=1e-5 * np.sqrt(g.size / shape[-1]))


def test_gelu_dispatch(switched_on):
    x = gpu(RNG.normal(size=(5, 6)))
    cp.testing.assert_array_equal(kc.gelu_forward(x), kc.gelu_forward_cuda(x))


# ---- attention softmax ---------------------------------------------------------------------
@pytest.mark.parametrize("shape,causal", [
    ((2, 3, 17, 17), True), ((1, 2, 5, 300), True),      # (5, 300): KV cache, last 5 queries
    ((1, 1, 1024, 1024), True), ((2, 1, 7, 1000), False), ((1, 1, 3, 1), False),
    ((1, 1, 1, 1), True), ((3, 2, 64, 257), False)])
def test_attention_softmax(shape, causal):
    scores = gpu(RNG.normal(size=shape) * 4)
    gatt = gpu(RNG.normal(size=shape))
    scale = 1 / np.sqrt(64)
    att = kc.attention_softmax_forward_cuda(scores, scale, causal)
    att_r = kc.attention_softmax_forward_reference(ref64(scores), scale, causal)
    close(att, att_r)
    if causal:   # masked keys are exactly 0, not merely small
        Tq, Tk = shape[-2:]
        above = np.arange(Tk)[None, :] > np.arange(Tq)[:, None] + (Tk - Tq)
        assert not cp.asnumpy(att)[..., above].any()
    close(kc.attention_softmax_backward_cuda(att, gatt, scale),
          kc.attention_softmax_backward_reference(att_r, ref64(gatt), scale))


def test_attention_softmax_dispatch_falls_back_past_1024_keys(switched_on):
    scores = gpu(RNG.normal(size=(1, 1, 2, 1025)))
    att = kc.attention_softmax_forward(scores, 0.125, True)      # the reference: no kernel
    close(att, kc.attention_softmax_forward_reference(ref64(scores), 0.125, True))
    small = scores[..., :1000]
    cp.testing.assert_array_equal(kc.attention_softmax_forward(small, 0.125, True),
                                  kc.attention_softmax_forward_cuda(small, 0.125, True))


# ---- cross-entropy ---------------------------------------------------------------------------
@pytest.mark.parametrize("N,V", [(1, 1), (7, 65), (33, 1000), (4, 50257), (300, 3)])
def test_cross_entropy(N, V):
    logits = gpu(RNG.normal(size=(N, V)) * 5)
    target = RNG.integers(0, V, size=N)
    if N > 2:
        target[[0, N // 2]] = -100                       # ignored rows
    loss, dlogits = kc.cross_entropy_forward_backward_cuda(logits, cp.asarray(target), -100)
    loss_r, dlogits_r = kc.cross_entropy_forward_backward_reference(
        ref64(logits), cp.asarray(target), -100)
    close(loss, loss_r, rtol=1e-5, atol=1e-5)
    close(dlogits, dlogits_r)


def test_cross_entropy_out_of_range_target_is_nan_not_silent():
    logits = gpu(RNG.normal(size=(3, 10)))
    loss, dlogits = kc.cross_entropy_forward_backward_cuda(logits, cp.asarray([1, 10, -3]))
    loss, dlogits = cp.asnumpy(loss), cp.asnumpy(dlogits)
    assert np.isfinite(loss[0]) and np.isnan(loss[1:]).all() and np.isnan(dlogits[1:]).all()


# ---- Adam / AdamW over a flat buffer -----------------------------------------------------------
@pytest.mark.parametrize("n", [1, 1000, (1 << 20) + 3])
@pytest.mark.parametrize("decoupled", [True, False])
@pytest.mark.parametrize("flags", [True, False])
def test_adam_step(n, decoupled, flags):
    param = RNG.normal(size=n)
    decay = (RNG.random(n) < 0.5).astype(np.uint8) if flags else None
    p32, m32, v32 = gpu(param), cp.zeros(n, cp.float32), cp.zeros(n, cp.float32)
    p64, m64, v64 = ref64(param), cp.zeros(n), cp.zeros(n)
    hyper = {"lr": 1e-3, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1,
             "decoupled": decoupled, "decay": None if decay is None else cp.asarray(decay)}
    for step in range(1, 4):
        g = RNG.normal(size=n)
        adam_kernel.adam_step_cuda(p32, gpu(g), m32, v32, step, **hyper)
        adam_kernel.adam_step_reference(p64, ref64(g), m64, v64, step, **hyper)
    close(m32, m64, rtol=1e-5, atol=1e-6)
    close(v32, v64, rtol=1e-5, atol=1e-7)
    close(p32, p64, rtol=1e-5, atol=1e-6)


def test_adam_dispatch(switched_on):
    p, g = gpu(RNG.normal(size=77)), gpu(RNG.normal(size=77))
    m, v = cp.zeros(77, cp.float32), cp.zeros(77, cp.float32)
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    adam_kernel.adam_step(p, g, m, v, 1, lr=0.01, weight_decay=0.1)
    adam_kernel.adam_step_cuda(p2, g, m2, v2, 1, lr=0.01, weight_decay=0.1)
    cp.testing.assert_array_equal(p, p2)


# ---- dropout: the GPU draws exactly the NumPy reference's masks ------------------------------
@pytest.mark.parametrize("n", [1, 3, 4, 5, 1000, (1 << 20) + 1])
@pytest.mark.parametrize("seed,offset", [(0, 0), (1234, 7), ((1 << 40) + 3, (1 << 33) + 5)])
def test_dropout_mask_equals_numpy(n, seed, offset):
    mask = kc.dropout_mask_cuda((n,), 0.3, seed, offset, cp)
    np.testing.assert_array_equal(cp.asnumpy(mask), philox.dropout_mask(n, 0.3, seed, offset))
    # the reference on CuPy arrays too (what runs on the GPU while the switch is off)
    cp.testing.assert_array_equal(mask, kc.dropout_mask_reference((n,), 0.3, seed, offset, cp))


@pytest.mark.parametrize("shape", [(3, 5, 7), (64, 385)])
def test_dropout_apply_forward_and_backward(shape):
    x, g = gpu(RNG.normal(size=shape)), gpu(RNG.normal(size=shape))
    mask = philox.dropout_mask(shape, 0.1, 42, 3)
    y = kc.dropout_apply_cuda(x, 0.1, 42, 3)
    np.testing.assert_array_equal(cp.asnumpy(y), cp.asnumpy(x) * mask)
    gx = kc.dropout_apply_cuda(g, 0.1, 42, 3)            # backward: the same mask, regenerated
    np.testing.assert_array_equal(cp.asnumpy(gx), cp.asnumpy(g) * mask)
    np.testing.assert_array_equal(cp.asnumpy(kc.dropout_apply_cuda(x, 0.1, 42, 3)),
                                  cp.asnumpy(y))          # a replay draws the same mask


def test_dropout_dispatch(switched_on):
    x = gpu(RNG.normal(size=(4, 9)))
    cp.testing.assert_array_equal(kc.dropout_apply(x, 0.5, 1, 2),
                                  kc.dropout_apply_cuda(x, 0.5, 1, 2))
    cp.testing.assert_array_equal(kc.dropout_mask((4, 9), 0.5, 1, 2, cp),
                                  kc.dropout_mask_cuda((4, 9), 0.5, 1, 2, cp))


# ---- im2col / col2im ---------------------------------------------------------------------------
CONVS = [  # (C, H, W, N), kernel, stride, padding
    ((3, 8, 9, 5), (3, 3), (1, 1), (1, 1)),
    ((2, 7, 6, 3), (3, 2), (2, 1), (1, 0)),
    ((4, 5, 5, 2), (5, 5), (2, 2), (2, 2)),
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0)),
    ((16, 28, 28, 33), (4, 4), (2, 2), (1, 1)),
]


def _out_size(shape, kernel, stride, padding):
    return tuple((n + 2 * p - k) // s + 1
                 for n, k, s, p in zip(shape[1:3], kernel, stride, padding))


@pytest.mark.parametrize("shape,kernel,stride,padding", CONVS)
@pytest.mark.parametrize("layout", ["rows", "nchw"])
def test_im2col_col2im(shape, kernel, stride, padding, layout):
    C, H, W, N = shape
    out_size = _out_size(shape, kernel, stride, padding)
    if layout == "rows":
        rows = gpu(RNG.normal(size=shape))
    else:                                           # an NCHW image read through its strides
        rows = gpu(RNG.normal(size=(N, C, H, W))).transpose(1, 2, 3, 0)
    cols = kc.im2col_cuda(rows, kernel, stride, padding, out_size)
    cols_r = kc.im2col_reference(ref64(rows), kernel, stride, padding, out_size)
    close(cols, cols_r, rtol=0, atol=0)              # a copy: exact
    c = gpu(RNG.normal(size=cols.shape))
    back = kc.col2im_cuda(c, shape, kernel, stride, padding)
    close(back, kc.col2im_reference(ref64(c), shape, kernel, stride, padding))
    # adjoint: <im2col(x), c> = <x, col2im(c)>
    lhs, rhs = float((cols.astype(cp.float64) * c).sum()), float((ref64(rows) * back).sum())
    assert abs(lhs - rhs) <= 1e-4 * max(1.0, abs(lhs))


def test_im2col_dispatch(switched_on):
    shape, kernel, stride, padding = CONVS[1]
    rows = gpu(RNG.normal(size=shape))
    out_size = _out_size(shape, kernel, stride, padding)
    cp.testing.assert_array_equal(kc.im2col(rows, kernel, stride, padding, out_size),
                                  kc.im2col_cuda(rows, kernel, stride, padding, out_size))
