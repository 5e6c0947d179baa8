"""Pooling, resizing, pixel shuffle and InstanceNorm's running statistics against PyTorch's
layers (forward, indices and input gradients over grids of options, float32 and float64),
PyTorch's tie rule, the errors, and the launches on the CuPy emulator. The Functions
themselves are in the op harness (tests/op_cases_pool.py)."""

import itertools

import numpy as np
import pytest
from conftest import EMULATED_CUDA

import tinygen as tg
import tinygen.nn.functional as F
from tinygen import backend, nn

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)


def same_as_torch(ours, theirs, shape, dtype=np.float32, data=None, device="cpu"):
    """Run both layers on the same input; compare output(s) and the input gradient."""
    x = RNG.standard_normal(shape).astype(dtype) if data is None else data.astype(dtype)
    a = tg.tensor(x, device=device, requires_grad=True)
    t = torch.tensor(x, requires_grad=True)
    out, ref = ours(a), theirs(t)
    indices = None
    if isinstance(ref, tuple):
        (out, indices), (ref, ref_indices) = out, ref
        np.testing.assert_array_equal(indices.numpy(), ref_indices.numpy())
        assert indices.dtype == np.int64
    assert out.shape == tuple(ref.shape) and out.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=tol, atol=tol)
    g = RNG.standard_normal(out.shape).astype(dtype)
    (out * tg.tensor(g, device=device)).sum().backward()
    (ref * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol)
    return out


MAX_GRID = [{"kernel_size": k, "stride": s, "padding": p, "dilation": d, "ceil_mode": c}
            for k, s, p, d, c in itertools.product([2, 3, (3, 2)], [None, 1, 2, (2, 1)],
                                                   [0, 1], [1, 2], [False, True])]


@pytest.mark.parametrize("options", MAX_GRID, ids=str)
def test_max_pool2d_equals_torch(options):
    for dtype in (np.float32, np.float64):
        same_as_torch(nn.MaxPool2d(**options, return_indices=True),
                      torch.nn.MaxPool2d(**options, return_indices=True), (2, 3, 9, 8), dtype)


@pytest.mark.parametrize("options", [{"kernel_size": k, "stride": s, "padding": p, "dilation": d,
                                          "ceil_mode": c} for k, s, p, d, c in itertools.product(
    [2, 3, 4], [None, 1, 3], [0, 1], [1, 2], [False, True])], ids=str)
def test_max_pool1d_equals_torch(options):
    same_as_torch(nn.MaxPool1d(**options, return_indices=True),
                  torch.nn.MaxPool1d(**options, return_indices=True), (2, 3, 11))


@pytest.mark.parametrize("options", [
    {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": c, "count_include_pad": i,
         "divisor_override": o} for k, s, p, c, i, o in itertools.product(
        [2, 3, (3, 2)], [None, 1, 2], [0, 1], [False, True], [True, False], [None, 5])],
    ids=str)
def test_avg_pool2d_equals_torch(options):
    same_as_torch(nn.AvgPool2d(**options), torch.nn.AvgPool2d(**options), (2, 3, 9, 7),
                  np.float64)


@pytest.mark.parametrize("options", [
    {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": c, "count_include_pad": i}
    for k, s, p, c, i in itertools.product([2, 3, 5], [None, 2], [0, 1, 2], [False, True],
                                           [True, False]) if p <= k // 2], ids=str)
def test_avg_pool1d_equals_torch(options):
    same_as_torch(nn.AvgPool1d(**options), torch.nn.AvgPool1d(**options), (2, 3, 12))


@pytest.mark.parametrize("out", [1, 2, 3, 5, 7, (4, 3), (None, 2), (9, 11)], ids=str)
def test_adaptive_pools_equal_torch(out):
    shape = (2, 3, 7, 9)
    same_as_torch(nn.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out), shape)
    same_as_torch(nn.AdaptiveMaxPool2d(out, return_indices=True),
                  torch.nn.AdaptiveMaxPool2d(out, return_indices=True), shape)
    if not isinstance(out, tuple):
        same_as_torch(nn.AdaptiveAvgPool1d(out), torch.nn.AdaptiveAvgPool1d(out), shape[1:])
        same_as_torch(nn.AdaptiveMaxPool1d(out, return_indices=True),
                      torch.nn.AdaptiveMaxPool1d(out, return_indices=True), shape[1:])


def test_unbatched_inputs_equal_torch():
    same_as_torch(nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1), (3, 8, 7))
    same_as_torch(nn.AvgPool1d(3, 2, 1), torch.nn.AvgPool1d(3, 2, 1), (3, 8))
    same_as_torch(nn.AdaptiveAvgPool2d(3), torch.nn.AdaptiveAvgPool2d(3), (3, 8, 7))


@pytest.mark.parametrize("kind", ["max2d", "max1d", "adaptive"])
def test_ties_take_the_first_maximum_as_torch(kind):
    """Integer data in {0, 1, 2}: most windows hold several maxima; PyTorch takes the first
    in row-major window order, and the gradient goes to that one only."""
    data = RNG.integers(0, 3, (2, 2, 8, 9)).astype(np.float64)
    if kind == "max2d":
        for options in MAX_GRID[::3]:
            same_as_torch(nn.MaxPool2d(**options, return_indices=True),
                          torch.nn.MaxPool2d(**options, return_indices=True), None,
                          data=data)
    elif kind == "max1d":
        same_as_torch(nn.MaxPool1d(3, 1, 1, return_indices=True),
                      torch.nn.MaxPool1d(3, 1, 1, return_indices=True), None,
                      data=data[0])
    else:
        same_as_torch(nn.AdaptiveMaxPool2d((3, 5), return_indices=True),
                      torch.nn.AdaptiveMaxPool2d((3, 5), return_indices=True), None,
                      data=data)


RESIZES = [{"size": (11, 4)}, {"size": 5}, {"scale_factor": 2}, {"scale_factor": 3},
           {"scale_factor": (1.7, 0.6)}, {"scale_factor": 0.5}, {"scale_factor": 1 / 3},
           {"scale_factor": 2.3, "recompute_scale_factor": True}, {"size": (5, 7)}]


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "area"])
@pytest.mark.parametrize("options", RESIZES, ids=str)
def test_interpolate_2d_equals_torch(mode, options):
    corners = [None, False, True] if mode == "bilinear" else [None]
    for align_corners, dtype in itertools.product(corners, (np.float32, np.float64)):
        kw = dict(options, mode=mode, align_corners=align_corners)
        same_as_torch(nn.Upsample(**kw), torch.nn.Upsample(**kw), (2, 3, 5, 7), dtype)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "linear", "area"])
@pytest.mark.parametrize("options", [{"size": 11}, {"scale_factor": 2}, {"size": 3},
                                     {"scale_factor": 0.4}, {"scale_factor": 1.5}], ids=str)
def test_interpolate_1d_equals_torch(mode, options):
    for align_corners in ([None, False, True] if mode == "linear" else [None]):
        kw = dict(options, mode=mode, align_corners=align_corners)
        same_as_torch(lambda x, kw=kw: F.interpolate(x, **kw),
                      lambda x, kw=kw: torch.nn.functional.interpolate(x, **kw), (2, 3, 7))


def test_upsampling_layers_and_pixel_shuffle_equal_torch():
    same_as_torch(nn.UpsamplingBilinear2d(scale_factor=2),
                  torch.nn.UpsamplingBilinear2d(scale_factor=2), (1, 2, 4, 5))
    same_as_torch(nn.UpsamplingNearest2d(size=(7, 3)),
                  torch.nn.UpsamplingNearest2d(size=(7, 3)), (1, 2, 4, 5))
    for r, shape in ((2, (2, 8, 3, 4)), (3, (9, 2, 2)), (2, (2, 3, 4, 5, 6))):
        same_as_torch(nn.PixelShuffle(r), torch.nn.PixelShuffle(r), shape)
    for r, shape in ((2, (2, 3, 4, 6)), (3, (2, 6, 9))):
        same_as_torch(nn.PixelUnshuffle(r), torch.nn.PixelUnshuffle(r), shape)
    x = tg.randn(2, 12, 3, 5)
    np.testing.assert_array_equal(F.pixel_unshuffle(F.pixel_shuffle(x, 2), 2).numpy(),
                                  x.numpy())


@pytest.mark.parametrize("cls, shape", [("InstanceNorm1d", (4, 3, 7)),
                                        ("InstanceNorm2d", (4, 3, 5, 6)),
                                        ("InstanceNorm2d", (3, 5, 6))])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_instance_norm_running_stats_equal_torch(cls, shape, momentum):
    ours = getattr(nn, cls)(3, momentum=momentum, affine=True, track_running_stats=True)
    theirs = getattr(torch.nn, cls)(3, momentum=momentum, affine=True,
                                    track_running_stats=True)
    for _ in range(3):                                   # training: instance statistics
        same_as_torch(ours, theirs, shape)
    state, ref = ours.state_dict(), theirs.state_dict()
    assert list(state) == list(ref)                      # PyTorch's names and order
    for name in state:
        np.testing.assert_allclose(state[name].numpy(), ref[name].numpy(), rtol=1e-5,
                                   atol=1e-6)
    ours.eval()
    theirs.eval()
    same_as_torch(ours, theirs, shape)                   # eval: the running statistics
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in state.items()})
    fresh = getattr(nn, cls)(3, affine=True, track_running_stats=True)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.running_var.numpy(), ours.running_var.numpy())


def test_instance_norm_without_running_stats_has_no_buffers():
    norm = nn.InstanceNorm2d(4)
    assert list(norm.state_dict()) == list(torch.nn.InstanceNorm2d(4).state_dict()) == []
    norm.eval()
    same_as_torch(norm, torch.nn.InstanceNorm2d(4).eval(), (2, 4, 3, 3))


@pytest.mark.parametrize("call, match", [
    (lambda x: F.max_pool2d(x, 3, padding=2), "max_pool2d: padding .* at most half"),
    (lambda x: F.avg_pool2d(x, 2, padding=-1), "avg_pool2d: padding"),
    (lambda x: F.max_pool2d(x, 9), "max_pool2d: .*output of size .* too small"),
    (lambda x: F.max_pool2d(x, 0), "max_pool2d: kernel_size must be positive"),
    (lambda x: F.max_pool2d(x, (2, 2, 2)), "max_pool2d: kernel_size must be an int"),
    (lambda x: F.max_pool1d(x, 2), "max_pool1d: expected a non-empty 2-D or 3-D"),
    (lambda x: F.max_pool2d(x[0, 0], 2), "max_pool2d: expected a non-empty 3-D or 4-D"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), "avg_pool2d: divisor_override"),
    (lambda x: F.adaptive_avg_pool2d(x, 0), "adaptive_avg_pool2d: output_size must be pos"),
    (lambda x: F.adaptive_max_pool2d(x, (2, 2, 2)), "adaptive_max_pool2d: output_size"),
    (lambda x: F.max_pool2d(x[..., :1, :1], 2, padding=1, dilation=2),
     "max_pool2d: a window lies entirely in the padding"),
    (lambda x: F.interpolate(x, size=4, scale_factor=2), "interpolate: give exactly one"),
    (lambda x: F.interpolate(x), "interpolate: give exactly one"),
    (lambda x: F.interpolate(x, size=(2, 3, 4)), "interpolate: size must be"),
    (lambda x: F.interpolate(x, scale_factor=0.1), "interpolate: .* output sizes must be"),
    (lambda x: F.interpolate(x, size=4, recompute_scale_factor=True), "not meaningful"),
    (lambda x: F.interpolate(x, size=4, align_corners=True), "align_corners can only"),
    (lambda x: F.interpolate(x[0], size=4, mode="bilinear"), "'bilinear' needs a 4-D"),
    (lambda x: F.interpolate(x, size=4, mode="linear"), "'linear' needs a 3-D"),
    (lambda x: F.interpolate(x, size=4, mode="bicubic"), "interpolate: mode must be one"),
    (lambda x: F.pixel_shuffle(x, 2), "pixel_shuffle: .* divide by upscale_factor"),
    (lambda x: F.pixel_unshuffle(x, 2), "pixel_unshuffle: .* divisible"),
])
def test_bad_arguments_name_the_op(call, match):
    x = tg.randn(2, 3, 5, 7)
    with pytest.raises(ValueError, match=match):
        call(x)


def test_instance_norm_errors():
    with pytest.raises(ValueError, match="InstanceNorm2d: expected an input"):
        nn.InstanceNorm2d(3)(tg.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        nn.InstanceNorm1d(3)(tg.randn(2, 3, 1))


@pytest.mark.skipif(not EMULATED_CUDA, reason="counts launches on the CuPy emulator")
@pytest.mark.parametrize("name, fn", [
    ("max_pool2d", lambda t: F.max_pool2d(t, 3, 2, 1)),
    ("avg_pool2d", lambda t: F.avg_pool2d(t, 3, 2, 1)),
    ("adaptive_max_pool2d", lambda t: F.adaptive_max_pool2d(t, 5)),
    ("bilinear", lambda t: F.interpolate(t, scale_factor=2, mode="bilinear"))])
def test_device_launches_syncs_and_uploads(name, fn):
    """A pooling or resize step on the device: the same few launches for any batch and
    image size (nothing per pixel, channel or image), no host sync, and the window plan
    uploaded once, not every step."""
    cp = backend.cp
    launches = set()
    for shape in ((2, 3, 16, 16), (4, 8, 32, 24)):
        x = tg.randn(*shape, device="cuda", requires_grad=True)
        fn(x).sum().backward()                           # builds and uploads the plan
        cp.COUNTS.reset()
        fn(x).sum().backward()
        counts = cp.COUNTS.snapshot()
        assert counts["syncs"] == 0 and counts["uploads"] == 0, (name, counts)
        launches.add(counts["launches"])
    assert len(launches) == 1 and max(launches) <= 20, (name, launches)
