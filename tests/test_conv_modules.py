"""The conv layers (tinygen/nn/conv.py) against PyTorch's: Conv1d, Conv2d, ConvTranspose1d,
ConvTranspose2d over a grid of options, given the same weights (state_dicts swap 1:1),
forward and every gradient; PyTorch's default init; the errors, each naming the layer.
(The ops themselves, with gradcheck and every device, are harness cases in
tests/op_cases_conv.py.)"""

import math

import numpy as np
import pytest

import tinygen as tg
import tinygen.nn.functional as F
from tinygen import nn

torch = pytest.importorskip("torch")

LAYERS = {"Conv1d": 1, "Conv2d": 2, "ConvTranspose1d": 1, "ConvTranspose2d": 2}

# (layer, options): groups (depthwise too), dilation, stride, padding ints / tuples /
# strings, padding modes, output_padding, no bias, unequal options per direction
GRID = [
    ("Conv2d", {}),
    ("Conv2d", {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2)}),
    ("Conv2d", {"groups": 2, "padding": "same", "kernel_size": (2, 3), "dilation": (2, 1)}),
    ("Conv2d", {"groups": 4, "out_channels": 8, "stride": 2, "padding": 1}),    # depthwise
    ("Conv2d", {"padding": "valid", "bias": False}),
    ("Conv2d", {"padding": 1, "padding_mode": "reflect", "stride": 2}),
    ("Conv2d", {"padding": (2, 1), "padding_mode": "replicate", "groups": 2}),
    ("Conv2d", {"padding": "same", "padding_mode": "circular", "kernel_size": 4}),
    ("Conv1d", {}),
    ("Conv1d", {"stride": 3, "padding": 2, "dilation": 2, "groups": 2}),
    ("Conv1d", {"padding": "same", "kernel_size": 4, "padding_mode": "reflect"}),
    ("Conv1d", {"groups": 4, "padding": 1, "padding_mode": "circular", "bias": False}),
    ("ConvTranspose2d", {}),
    ("ConvTranspose2d", {"stride": 2, "padding": 1, "output_padding": 1, "kernel_size": 4}),
    ("ConvTranspose2d", {"stride": (2, 3), "padding": (0, 1), "output_padding": (1, 2),
                         "dilation": (1, 2), "groups": 2}),
    ("ConvTranspose2d", {"groups": 4, "out_channels": 4, "dilation": 3, "output_padding": 2,
                         "bias": False}),
    ("ConvTranspose1d", {"stride": 2, "output_padding": 1}),
    ("ConvTranspose1d", {"groups": 2, "dilation": 2, "padding": 2, "stride": 3}),
]


def build(name, options):
    """(ours, theirs): the same layer from both libraries, theirs loading our state_dict."""
    args = {"in_channels": 4, "out_channels": 6, "kernel_size": 3, **options}
    if args.get("groups", 1) == 4 and "out_channels" not in options:
        args["out_channels"] = 4
    tg.manual_seed(0)
    ours = getattr(nn, name)(**args)
    theirs = getattr(torch.nn, name)(**args).double()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().astype(np.float64))
                            for k, v in ours.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("name, options", GRID,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items())}" for n, o in GRID])
def test_layer_equals_torch(name, options):
    ours, theirs = build(name, options)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    n = LAYERS[name]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 7, 6) if n == 2 else (2, 4, 9))
    for p in ours.parameters():  # float64, so that the comparison is tight
        p.data = p.data.astype(np.float64)
    xt, xo = torch.tensor(x, requires_grad=True), tg.tensor(x, requires_grad=True)
    out, want = ours(xo), theirs(xt)
    assert out.shape == tuple(want.shape)
    np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    want.backward(torch.tensor(g))
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    grads = dict(theirs.named_parameters())
    for k, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads[k].grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=k)


def test_unbatched_input_and_output_size():
    """PyTorch's unbatched inputs; ConvTranspose's output_size picks output_padding."""
    tg.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1)
    x = tg.randn(3, 6, 6)
    np.testing.assert_allclose(conv(x).numpy(), conv(x.reshape(1, 3, 6, 6)).numpy()[0])
    assert nn.Conv1d(3, 2, 2)(tg.randn(3, 5)).shape == (2, 4)
    up = nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1)
    assert up(tg.randn(1, 2, 5, 5)).shape == (1, 2, 9, 9)
    assert up(tg.randn(1, 2, 5, 5), output_size=(10, 10)).shape == (1, 2, 10, 10)
    with pytest.raises(ValueError, match=r"ConvTranspose2d: output_size \(11, 11\) is not "
                                         r"reachable"):
        up(tg.randn(1, 2, 5, 5), output_size=(11, 11))


@pytest.mark.parametrize("name", LAYERS)
def test_default_init_is_pytorchs(name):
    """kaiming_uniform_(a=√5) = U(±1/√fan_in) and bias U(±1/√fan_in), fan_in computed from
    the weight as PyTorch does: weight.shape[1] (in/groups, or out/groups transposed) · K."""
    tg.manual_seed(0)
    n, transposed = LAYERS[name], name.startswith("ConvTranspose")
    kernel = (3, 5) if n == 2 else 5
    layer, twin = getattr(nn, name)(8, 12, kernel, groups=4), getattr(torch.nn, name)(
        8, 12, kernel, groups=4)
    assert layer.weight.shape == tuple(twin.weight.shape)
    assert layer.weight.shape[:2] == ((8, 3) if transposed else (12, 2))
    bound = 1 / math.sqrt(layer.weight.shape[1] * (15 if n == 2 else 5))
    for p in (layer.weight, layer.bias):
        assert p.dtype == np.float32 and np.abs(p.numpy()).max() <= bound
    assert np.abs(layer.weight.numpy()).max() > 0.9 * bound   # uses the whole range
    assert np.abs(twin.weight.detach().numpy()).max() <= bound   # PyTorch's, the same bound
    assert list(layer.state_dict()) == ["weight", "bias"]


def test_repr_is_pytorchs():
    layer = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, bias=False,
                      padding_mode="reflect")
    twin = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, bias=False,
                           padding_mode="reflect")
    assert repr(layer) == repr(twin)
    assert repr(nn.ConvTranspose1d(2, 3, 4, 2, output_padding=1, dilation=2)) == repr(
        torch.nn.ConvTranspose1d(2, 3, 4, 2, output_padding=1, dilation=2))


def test_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"Conv2d: in_channels \(3\) must be divisible by "
                                         r"groups \(2\)"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"ConvTranspose1d: out_channels \(5\) must be "
                                         r"divisible by groups \(2\)"):
        nn.ConvTranspose1d(4, 5, 3, groups=2)
    with pytest.raises(ValueError, match="Conv2d: padding='same' is not supported for strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="Conv1d: padding must be an int, a tuple of ints, "
                                         "'valid' or 'same', got 'full'"):
        nn.Conv1d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match=r"Conv2d: padding_mode must be one of \('zeros', "
                                         r"'reflect', 'replicate', 'circular'\), got 'mirror'"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="ConvTranspose2d: only 'zeros' padding_mode"):
        nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="ConvTranspose2d: padding must be an int or a tuple"):
        nn.ConvTranspose2d(3, 4, 3, padding="same")
    with pytest.raises(ValueError, match="Conv2d: dilation must be an int or a pair of ints"):
        nn.Conv2d(3, 4, 3, dilation=(1, 2, 3))
    with pytest.raises(ValueError, match=r"Conv2d\(in_channels=3\): expected an input "
                                         r"\[N, 3, H, W\].*got shape \(2, 4, 8, 8\)"):
        nn.Conv2d(3, 4, 3)(tg.randn(2, 4, 8, 8))
    with pytest.raises(ValueError, match=r"Conv1d\(in_channels=3\): expected an input "
                                         r"\[N, 3, W\].*got shape \(2, 3, 4, 4\)"):
        nn.Conv1d(3, 4, 3)(tg.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="groups must be a positive int"):
        nn.Conv2d(3, 3, 3, groups=0)


def test_functional_errors_name_the_op():
    x = tg.randn(2, 4, 6, 6)
    with pytest.raises(ValueError, match=r"conv2d: input \(2, 4, 6, 6\) has 4 channels, but "
                                         r"the weight \(6, 3, 3, 3\).*groups=1\) expects 3"):
        F.conv2d(x, tg.randn(6, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: weight \(5, 2, 3, 3\).* not divisible by "
                                         r"groups=2"):
        F.conv2d(x, tg.randn(5, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match="conv1d: padding='same' is not supported for strided"):
        F.conv1d(tg.randn(1, 2, 8), tg.randn(3, 2, 3), stride=2, padding="same")
    with pytest.raises(ValueError, match=r"conv1d: kernel \(5,\) \(dilated to \(9,\)\) is "
                                         r"larger than the padded input \(8,\)"):
        F.conv1d(tg.randn(1, 2, 8), tg.randn(3, 2, 5), dilation=2)
    with pytest.raises(ValueError, match="conv_transpose1d: padding must be an int or a tuple"):
        F.conv_transpose1d(tg.randn(1, 2, 8), tg.randn(2, 3, 3), padding="same")
    with pytest.raises(ValueError, match="conv_transpose2d: dilation must be positive"):
        F.conv_transpose2d(x, tg.randn(4, 3, 3, 3), dilation=0)
