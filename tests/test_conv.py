"""conv2d and conv_transpose2d (tinygen/ops/conv.py) and the Conv2d / ConvTranspose2d layers.

Forward against a direct loop-over-pixels NumPy reference and against PyTorch (when it is
installed), on hypothesis-drawn shapes (gradcheck, float32 and devices are harness cases
in tests/op_cases.py, with unequal strides and paddings per direction pinned),
kernels (1-4), strides (1-3), paddings (0-2) and output paddings; then the adjoint identity
that ties the two ops together, float32, the layers and the bad-input errors. How the ops
read their input (im2col, col2im, RowTaps, the batch-last rows): tests/test_conv_columns.py.
"""

import math

import numpy as np
import pytest
from conftest import leaf
from hypothesis import assume, given
from hypothesis import strategies as st

import tinygen as tg
import tinygen.nn.functional as F
import tinygen.ops.conv
from tinygen import nn

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


# ---- references: direct loops over output (or input) pixels ------------------------------
def ref_conv2d(x, w, b, stride, padding):
    """out[n, o, i, j] = Σ_{c,a,b} x_pad[n, c, i S_h + a, j S_w + b] w[o, c, a, b] + b[o]."""
    (sh, sw), (ph, pw) = stride, padding
    Kh, Kw = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    Ho, Wo = (xp.shape[2] - Kh) // sh + 1, (xp.shape[3] - Kw) // sw + 1
    out = np.zeros((x.shape[0], w.shape[0], Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            patch = xp[:, :, i * sh:i * sh + Kh, j * sw:j * sw + Kw]         # [N, C, K_h, K_w]
            out[:, :, i, j] = np.einsum("ncab,ocab->no", patch, w)
    return out if b is None else out + b[:, None, None]


def ref_conv_transpose2d(x, w, b, stride, padding, output_padding):
    """Every input pixel scatters x[n, c, i, j] * w[c] onto the output window at
    (i S_h, j S_w); then `padding` is cropped from each side (output_padding adds rows and
    columns at the bottom and right)."""
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, output_padding
    N, _, H, W = x.shape
    Kh, Kw = w.shape[2:]
    full = np.zeros((N, w.shape[1], (H - 1) * sh + Kh + oh, (W - 1) * sw + Kw + ow))
    for i in range(H):
        for j in range(W):
            full[:, :, i * sh:i * sh + Kh, j * sw:j * sw + Kw] += np.einsum(
                "nc,coab->noab", x[:, :, i, j], w)
    Ho, Wo = (H - 1) * sh - 2 * ph + Kh + oh, (W - 1) * sw - 2 * pw + Kw + ow
    out = full[:, :, ph:ph + Ho, pw:pw + Wo]
    return out if b is None else out + b[:, None, None]


# ---- hypothesis cases ---------------------------------------------------------------------
@st.composite
def conv_cases(draw, transposed=False):
    """Arguments and float64 data for one conv2d (or conv_transpose2d) call, kept small:
    gradcheck runs two forward passes per input element."""
    ints = st.integers
    N, C_in, C_out = draw(ints(1, 2)), draw(ints(1, 3)), draw(ints(1, 3))
    kernel = (draw(ints(1, 4)), draw(ints(1, 4)))
    stride = (draw(ints(1, 3)), draw(ints(1, 3)))
    padding = (draw(ints(0, 2)), draw(ints(0, 2)))
    if transposed:
        size = (draw(ints(1, 4)), draw(ints(1, 4)))
        output_padding = (draw(ints(0, stride[0] - 1)), draw(ints(0, stride[1] - 1)))
        assume(all((n - 1) * s - 2 * p + k + o >= 1 for n, s, p, k, o in
                   zip(size, stride, padding, kernel, output_padding)))
        w_shape = (C_in, C_out, *kernel)
    else:  # the padded input must hold at least one kernel position
        size = tuple(draw(ints(max(1, k - 2 * p), max(1, k - 2 * p) + 4))
                     for k, p in zip(kernel, padding))
        output_padding = None
        w_shape = (C_out, C_in, *kernel)
    rng = np.random.default_rng(draw(ints(0, 2**32 - 1)))
    x = rng.standard_normal((N, C_in, *size))
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(C_out) if draw(st.booleans()) else None
    return {"x": x, "w": w, "b": b, "stride": stride, "padding": padding,
            "output_padding": output_padding}


def call(case, x, w, b, lib=F):
    """Run the case's op from `lib` (tinygen's F or torch.nn.functional)."""
    if case["output_padding"] is None:
        return lib.conv2d(x, w, b, case["stride"], case["padding"])
    return lib.conv_transpose2d(x, w, b, case["stride"], case["padding"],
                                case["output_padding"])


def reference(case):
    if case["output_padding"] is None:
        return ref_conv2d(case["x"], case["w"], case["b"], case["stride"], case["padding"])
    return ref_conv_transpose2d(case["x"], case["w"], case["b"], case["stride"],
                                case["padding"], case["output_padding"])


def leaves(case, device, dtype=np.float64):
    arrays = [case["x"], case["w"]] + ([case["b"]] if case["b"] is not None else [])
    return [tg.tensor(a.astype(dtype), device=device, requires_grad=True) for a in arrays]


def with_bias(case, fn):
    """fn(x, w, b) as a function of the leaves (x, w) or (x, w, b)."""
    return lambda x, w, b=None: fn(case, x, w, b)


# ---- forward, gradients, PyTorch ----------------------------------------------------------
@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
@given(data=st.data())
def test_forward_equals_loop_reference(transposed, device, data):
    case = data.draw(conv_cases(transposed))
    out = call(case, *leaves(case, device) + [None] * (case["b"] is None))
    want = reference(case)
    assert out.shape == want.shape and out.device == device
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-10)


@needs_torch
@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
@given(data=st.data())
def test_matches_torch_forward_and_backward(transposed, data):
    case = data.draw(conv_cases(transposed))
    ours = leaves(case, "cpu")
    theirs = [torch.tensor(t.numpy(), requires_grad=True) for t in ours]
    none = [None] * (case["b"] is None)
    out, want = call(case, *ours + none), call(case, *theirs + none, lib=torch.nn.functional)
    np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(g)
    want.backward(torch.tensor(g))
    for t, u in zip(ours, theirs):
        np.testing.assert_allclose(t.grad.numpy(), u.grad.numpy(), rtol=1e-10, atol=1e-10)


@given(data=st.data())
def test_conv_transpose2d_is_the_adjoint_of_conv2d(device, data):
    """<conv2d(z, w), y> = <z, conv_transpose2d(y, w)> for every z, y: the transposed
    convolution is conv2d's input gradient, which is how conv.py computes it."""
    case = data.draw(conv_cases(transposed=False))
    z = leaf(case["x"], device, requires_grad=False)
    w = leaf(case["w"], device, requires_grad=False)
    y = F.conv2d(z, w, None, case["stride"], case["padding"])
    # conv2d rounds the output size down; output_padding gives back the rows it dropped
    op = tuple((n + 2 * p - k) % s for n, p, k, s in
               zip(z.shape[2:], case["padding"], w.shape[2:], case["stride"]))
    r = leaf(np.random.default_rng(1).standard_normal(y.shape), device, requires_grad=False)
    back = F.conv_transpose2d(r, w, None, case["stride"], case["padding"], op)
    assert back.shape == z.shape
    np.testing.assert_allclose((y * r).sum().item(), (z * back).sum().item(), rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
@given(data=st.data())
def test_float32_in_float32_out(transposed, device, data):
    case = data.draw(conv_cases(transposed))
    inputs = leaves(case, device, np.float32)
    out = call(case, *inputs + [None] * (case["b"] is None))
    assert out.dtype == np.float32
    out.backward(np.ones(out.shape, dtype=np.float32))
    assert all(t.grad.dtype == np.float32 for t in inputs)
    np.testing.assert_allclose(out.numpy(), reference(case), rtol=1e-4, atol=1e-4)


def test_only_the_needed_gradients():
    """A frozen input (an image batch) gets no gradient and costs no col2im."""
    x = tg.randn(2, 3, 6, 6)
    w = tg.randn(4, 3, 3, 3, requires_grad=True)
    F.conv2d(x, w, stride=2, padding=1).sum().backward()
    assert x.grad is None and w.grad.shape == w.shape


# ---- layers -------------------------------------------------------------------------------
def test_dcgan_shapes():
    """4x4 kernels with stride 2 and padding 1 halve (Conv2d) and double (ConvTranspose2d)."""
    x = tg.randn(3, 1, 28, 28)
    down = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 16, 4, 2, 1))
    h = down(x)
    assert h.shape == (3, 16, 7, 7)
    up = nn.Sequential(nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.ReLU(),
                       nn.ConvTranspose2d(8, 1, 4, 2, 1), nn.Tanh())
    assert up(h).shape == (3, 1, 28, 28)
    flat = nn.Flatten()(h)
    assert flat.shape == (3, 16 * 49)
    assert nn.Unflatten(1, (16, 7, 7))(flat).shape == h.shape
    assert nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1, output_padding=1)(
        tg.randn(1, 2, 5, 5)).shape == (1, 2, 10, 10)


@pytest.mark.parametrize("transposed", [False, True])
def test_layer_init_and_state_dict(transposed):
    """PyTorch's default init: weight and bias uniform in ±1/√fan_in with fan_in =
    weight.shape[1] * K_h * K_w (for ConvTranspose2d that is out_channels * K_h * K_w)."""
    tg.manual_seed(0)
    layer = (nn.ConvTranspose2d if transposed else nn.Conv2d)(16, 32, (3, 5), stride=2)
    w_shape = (16, 32, 3, 5) if transposed else (32, 16, 3, 5)
    assert layer.weight.shape == w_shape and layer.bias.shape == (32,)
    bound = 1 / math.sqrt(w_shape[1] * 15)
    for p in (layer.weight, layer.bias):
        assert p.dtype == np.float32 and np.abs(p.numpy()).max() <= bound
    assert np.abs(layer.weight.numpy()).max() > 0.95 * bound  # uses the whole range
    assert list(layer.state_dict()) == ["weight", "bias"]
    assert nn.Conv2d(2, 3, 1, bias=False).bias is None
    assert "stride=(2, 2)" in repr(layer)


@needs_torch
def test_layers_match_torch_with_the_same_weights():
    tg.manual_seed(0)
    ours = nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                         nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1, output_padding=1))
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, stride=2, padding=1), torch.nn.LeakyReLU(0.2),
        torch.nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1, output_padding=1))
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in
                            ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 2, 9, 9)).astype(np.float32)
    out, want = ours(tg.tensor(x)), theirs(torch.from_numpy(x))
    assert out.shape == tuple(want.shape)
    np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_leaky_relu():
    x = tg.tensor(np.array([-2.0, -0.5, 0.5, 3.0], dtype=np.float32), requires_grad=True)
    out = nn.LeakyReLU(0.2)(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), [-0.4, -0.1, 0.5, 3.0], rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.2, 0.2, 1, 1], rtol=1e-6)


# ---- bad input ----------------------------------------------------------------------------
def test_errors_name_the_op_and_shapes():
    x, w = tg.randn(2, 3, 5, 5), tg.randn(4, 3, 3, 3)
    with pytest.raises(ValueError, match=r"conv2d: input \(2, 3, 5, 5\) has 3 channels.*"
                                         r"\(4, 5, 3, 3\).*expects 5"):
        F.conv2d(x, tg.randn(4, 5, 3, 3))
    with pytest.raises(ValueError, match=r"conv_transpose2d: input \(2, 3, 5, 5\) has 3 "
                                         r"channels.*expects 4"):
        F.conv_transpose2d(x, w)
    with pytest.raises(ValueError, match=r"conv2d: kernel \(7, 7\) is larger than the padded "
                                         r"input \(7, 5\)"):
        F.conv2d(x, tg.randn(4, 3, 7, 7), padding=(1, 0))
    with pytest.raises(ValueError, match=r"conv2d: expected a 3-D \(unbatched\) or 4-D "
                                         r"\(batched\) input.*\(3, 5\)"):
        F.conv2d(tg.randn(3, 5), w)
    assert F.conv2d(tg.randn(3, 5, 5), w).shape == (4, 3, 3)   # unbatched, as in PyTorch
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D weight.*\(4, 3, 3\)"):
        F.conv2d(x, tg.randn(4, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(4,\)"):
        F.conv2d(x, w, tg.randn(3))
    for stride in (0, (1, -1)):
        with pytest.raises(ValueError, match="conv2d: stride must be positive"):
            F.conv2d(x, w, stride=stride)
    for stride in (1.5, (1, 2, 3), "2"):
        with pytest.raises(ValueError, match="conv2d: stride must be an int or a pair"):
            F.conv2d(x, w, stride=stride)
    with pytest.raises(ValueError, match="conv2d: padding must be non-negative"):
        F.conv2d(x, w, padding=-1)
    with pytest.raises(ValueError, match=r"output_padding \(2, 2\) must be .* smaller than "
                                         r"the stride \(2, 2\)"):
        F.conv_transpose2d(tg.randn(1, 4, 3, 3), w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="conv_transpose2d: .* gives an empty output"):
        F.conv_transpose2d(tg.randn(1, 4, 1, 1), w, padding=2)
    with pytest.raises(ValueError, match="Conv2d: kernel_size must be an int or a pair"):
        nn.Conv2d(1, 2, (3, 3, 3))
