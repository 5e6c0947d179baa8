"""How a convolution reads its input (tinygen/ops/im2col.py, the column helpers of
tinygen/ops/conv.py): im2col and col2im as adjoints, a stride-1 layer's input gradient as
a convolution, the columns one kernel row at a time (RowTaps) and where conv_columns takes
them, and the batch-last rows that conv layers hand each other. tests/test_conv.py checks
the ops and layers built on them.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygen as tg
import tinygen.nn.functional as F
import tinygen.ops.conv
from tinygen.backend import module_for, to_numpy
from tinygen.backend import to_batch_last as to_rows
from tinygen.ops.conv import full_padding, input_grad_as_conv, input_grad_by_col2im
from tinygen.ops.im2col import col2im, conv_out_size, im2col, width_im2col

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


# ---- im2col, col2im and the input gradient ------------------------------------------------
@given(data=st.data())
def test_im2col_and_col2im_are_adjoint(device, data):
    """<im2col(x), c> = <x, col2im(c)>, and im2col matches slicing a zero-padded copy, for
    dilations, strides and paddings per side up to (and past) the kernel size. On "cuda"
    col2im is a scatter-add (ops/im2col.py), on the CPU per-offset slice sums: the adjoint
    identity and the CPU comparison check both."""
    ints = st.integers
    C, N = data.draw(ints(1, 3)), data.draw(ints(1, 3))
    K = (data.draw(ints(1, 4)), data.draw(ints(1, 4)))
    S = (data.draw(ints(1, 3)), data.draw(ints(1, 3)))
    D = (data.draw(ints(1, 3)), data.draw(ints(1, 3)))
    P = tuple((data.draw(ints(0, 4)), data.draw(ints(0, 4))) for _ in range(2))
    smallest = [max(1, d * (k - 1) + 1 - lo - hi) for k, d, (lo, hi) in zip(K, D, P)]
    H, W = (data.draw(ints(n, max(n, 7))) for n in smallest)  # a dilated 4-tap kernel spans 10
    out = conv_out_size((H, W), K, S, P, D)
    rng = np.random.default_rng(data.draw(ints(0, 2**32 - 1)))
    x = rng.standard_normal((C, H, W, N))
    xp = module_for(device)
    cols = to_numpy(im2col(xp.asarray(x), K, S, P, out, D))
    padded = np.pad(x, ((0, 0), P[0], P[1], (0, 0)))
    want = np.stack([padded[:, a * D[0]:a * D[0] + S[0] * out[0]:S[0],
                            b * D[1]:b * D[1] + S[1] * out[1]:S[1]]
                     for a in range(K[0]) for b in range(K[1])], axis=1)
    np.testing.assert_array_equal(cols, want.reshape(cols.shape))
    c = rng.standard_normal(cols.shape)
    back = to_numpy(col2im(xp.asarray(c), x.shape, K, S, P, D))
    np.testing.assert_allclose((cols * c).sum(), (x * back).sum(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(back, col2im(c, x.shape, K, S, P, D), rtol=1e-12, atol=1e-12)


@given(data=st.data())
def test_stride_one_input_grad_as_a_convolution(device, data):
    """A stride-1 layer's input gradient as a convolution of the padded output gradient
    with the flipped, transposed kernel (ops/conv.py: input_grad_as_conv) equals the col2im
    path and PyTorch's, over groups, dilations, paddings per side (the asymmetric 'same'
    split included), fewer or more output channels, and a transposed layer's output
    padding; paddings past d (K - 1) fall back to col2im (full_padding is None)."""
    ints = st.integers
    G = data.draw(ints(1, 2))
    B, A_g, N = data.draw(ints(1, 3)), data.draw(ints(1, 3)), data.draw(ints(1, 2))
    K = (data.draw(ints(1, 3)), data.draw(ints(1, 3)))
    D = (data.draw(ints(1, 2)), data.draw(ints(1, 2)))
    P = tuple((data.draw(ints(0, 3)), data.draw(ints(0, 3))) for _ in range(2))
    smallest = [max(1, d * (k - 1) + 1 - lo - hi) for k, d, (lo, hi) in zip(K, D, P)]
    H, W = (data.draw(ints(n, n + 4)) for n in smallest)
    out = conv_out_size((H, W), K, (1, 1), P, D)
    xp, rng = module_for(device), np.random.default_rng(data.draw(ints(0, 2**32 - 1)))
    weight = rng.standard_normal((G * A_g, B, *K))                  # [A, B, K_h, K_w]
    g = rng.standard_normal((G * A_g, out[0] * out[1] * N))         # rows [A, H_out*W_out*N]
    args = (xp.asarray(g), out, xp.asarray(weight), (N, G * B, H, W))
    want = to_numpy(input_grad_by_col2im(*args, (1, 1), P, D, G))
    back = full_padding(out, (H, W), K, (1, 1), P, D)
    if any(lo > d * (k - 1) or hi > d * (k - 1) for k, d, (lo, hi) in zip(K, D, P)):
        assert back is None
        return
    got = to_numpy(input_grad_as_conv(*args, back, D, G))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    if torch is not None:  # PyTorch's input gradient, through its autograd
        grad = np.moveaxis(g.reshape(G * A_g, *out, N), -1, 0)
        x = torch.zeros((N, G * B, H, W), dtype=torch.float64, requires_grad=True)
        padded = torch.nn.functional.pad(x, (*P[1], *P[0]))
        y = torch.nn.functional.conv2d(padded, torch.tensor(weight), dilation=D, groups=G)
        y.backward(torch.tensor(grad))
        np.testing.assert_allclose(got, x.grad.numpy(), rtol=1e-10, atol=1e-10)


@needs_torch
@pytest.mark.parametrize("groups", [1, 2])
def test_stride_one_conv_transpose_with_dilation_and_output_padding(groups, monkeypatch):
    """conv_transpose2d at stride 1 runs input_grad_as_conv; output_padding < dilation."""
    calls = []

    def counted(*args):
        calls.append(args[3])
        return input_grad_as_conv(*args)

    monkeypatch.setattr(tinygen.ops.conv, "input_grad_as_conv", counted)
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((4, 4 // groups, 3, 2))
    ours = [tg.tensor(a, requires_grad=True) for a in (x, w)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w)]
    args = {"stride": 1, "padding": (1, 0), "output_padding": (1, 0), "groups": groups,
            "dilation": (2, 1)}
    out = F.conv_transpose2d(*ours, **args)
    assert calls == [out.shape]
    want = torch.nn.functional.conv_transpose2d(*theirs, **args)
    np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-10)
    out.backward(np.ones(out.shape))
    want.backward(torch.ones(want.shape, dtype=torch.float64))
    for t, u in zip(ours, theirs):
        np.testing.assert_allclose(t.grad.numpy(), u.grad.numpy(), rtol=1e-10, atol=1e-10)


@given(data=st.data())
def test_row_taps_are_the_full_columns(data):
    """im2col.width_im2col's columns of the kernel's width hold the full im2col: kernel row
    a's block, rows (c, a, b) of im2col, is the slice RowTaps.tap(a), for dilations,
    paddings per side and strides in width."""
    ints = st.integers
    C, N, Kh, Kw = (data.draw(ints(1, 3)), data.draw(ints(1, 2)), data.draw(ints(2, 4)),
                    data.draw(ints(1, 3)))
    S, D = (1, data.draw(ints(1, 2))), (data.draw(ints(1, 2)), data.draw(ints(1, 2)))
    P = tuple((data.draw(ints(0, 2)), data.draw(ints(0, 2))) for _ in range(2))
    smallest = [max(1, d * (k - 1) + 1 - lo - hi) for k, d, (lo, hi) in zip((Kh, Kw), D, P)]
    H, W = (data.draw(ints(n, n + 4)) for n in smallest)
    rows = np.random.default_rng(0).standard_normal((C, H, W, N))
    out = conv_out_size((H, W), (Kh, Kw), S, P, D)
    full = im2col(rows, (Kh, Kw), S, P, out, D).reshape(C, Kh, Kw, -1)
    taps = width_im2col(rows, (Kh, Kw), S, P, out, D)
    for a in range(Kh):
        np.testing.assert_array_equal(taps.tap(a).reshape(C, Kw, -1), full[:, a])


def test_row_taps_only_where_faster_and_no_larger():
    """conv_columns keeps im2col where RowTaps would lose (few input channels, small
    images next to their padding) or hold more memory (many output channels)."""
    from tinygen.ops.conv import conv_columns
    from tinygen.ops.im2col import RowTaps

    def picks(C, H, A, stride=(1, 1)):
        rows = np.zeros((C, H, H, 2), np.float32)
        out = conv_out_size((H, H), (3, 3), stride, ((1, 1), (1, 1)))
        return isinstance(conv_columns(rows, (3, 3), stride, ((1, 1), (1, 1)), out, (1, 1),
                                       1, A), RowTaps)

    assert picks(16, 32, 16) and picks(32, 16, 32)        # the residual net's 3x3 layers
    assert not picks(3, 32, 16)                            # the stem: inner size 9
    assert not picks(64, 8, 64)                            # 2 padded rows on 8
    assert not picks(16, 32, 512)                          # its output outgrows im2col
    assert not picks(16, 32, 16, stride=(2, 2))


@needs_torch
@given(data=st.data())
def test_convolutions_from_row_taps_match_the_full_columns_and_torch(data, monkeypatch):
    """Where conv_columns picks RowTaps (stride 1 in height, C K_w >= 32, H_out large next
    to the padded rows), conv2d's output and all three gradients, and a stride-1
    conv_transpose2d's (whose backward reads the output gradient's columns), equal those
    of the full im2col and PyTorch's."""
    ints = st.integers
    transposed = data.draw(st.booleans())
    C, O, N = data.draw(ints(11, 16)), data.draw(ints(1, 4)), data.draw(ints(1, 2))
    K = (data.draw(ints(2, 3)), data.draw(ints(3, 4)))
    D = (data.draw(ints(1, 2)), data.draw(ints(1, 2)))
    S = (1, 1) if transposed else (1, data.draw(ints(1, 2)))
    P = (data.draw(ints(0, 1)), data.draw(ints(0, 2)))
    H = 8 * D[0] * (K[0] - 1) + data.draw(ints(2, 4)) + K[0] * D[0]
    W = D[1] * (K[1] - 1) + data.draw(ints(1, 4))
    rng = np.random.default_rng(data.draw(ints(0, 2**32 - 1)))
    x = rng.standard_normal((N, O if transposed else C, H, W))
    w = rng.standard_normal((O, C, *K)) * 0.1       # [C_out, C_in] or, transposed, [C_in, C_out]
    b = rng.standard_normal(C if transposed else O)
    op = F.conv_transpose2d if transposed else F.conv2d
    picked = []

    def results():
        ours = [tg.tensor(a, requires_grad=True) for a in (x, w, b)]
        out = op(*ours, stride=S, padding=P, dilation=D)
        out.backward(np.cos(np.arange(out.numel())).reshape(out.shape))
        return [out.numpy()] + [t.grad.numpy() for t in ours]

    columns = tinygen.ops.conv.conv_columns

    def recorded(*args):
        cols = columns(*args)
        picked.append(type(cols).__name__)
        return cols

    with monkeypatch.context() as patched:   # undone before hypothesis's next example
        patched.setattr(tinygen.ops.conv, "conv_columns", recorded)
        got = results()
        assert "RowTaps" in picked
        patched.setattr(tinygen.ops.conv, "conv_columns",
                        lambda rows, K, S, P, out, D, G, A: im2col(rows, K, S, P, out, D))
        for a, want in zip(got, results()):
            np.testing.assert_allclose(a, want, rtol=1e-10, atol=1e-10)
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    top = torch.nn.functional.conv_transpose2d if transposed else torch.nn.functional.conv2d
    out = top(*theirs, stride=S, padding=P, dilation=D)
    out.backward(torch.tensor(np.cos(np.arange(out.numel())).reshape(out.shape)))
    for a, want in zip(got, [out] + [t.grad for t in theirs]):
        np.testing.assert_allclose(a, want.detach().numpy(), rtol=1e-9, atol=1e-9)


# ---- the batch-last rows ------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(37, 5, 20, 20), (300, 1, 16, 16), (3, 2, 4, 4)])
@pytest.mark.parametrize("strided", [False, True])
def test_to_rows_is_the_batch_last_copy(shape, strided):
    """Small, large (copied 16 images at a time, N not a multiple of 16) and strided input."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    if strided:
        x = np.repeat(x, 2, axis=2)[:, :, ::2]
    rows = to_rows(x)
    assert rows.flags.c_contiguous
    np.testing.assert_array_equal(rows, x.transpose(1, 2, 3, 0))
