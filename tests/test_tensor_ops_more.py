"""Ops of issue #12 that are not differentiable or that the op harness's cases
(tests/op_cases_tensor.py) do not cover: indices of sort/topk/argmax, scatter and
scatter_add, integer and logical ops, value tests, creation, one_hot, einsum errors.
Each against PyTorch where torch is installed, else against written-out values."""

import math

import numpy as np
import pytest

import tinygen as tg
import tinygen.nn.functional as F


def torch():
    return pytest.importorskip("torch")


def test_sort_topk_argsort_indices_match_pytorch(device):
    t = torch()
    x = np.array([[3.0, 1.0, 2.0, 1.0], [0.5, 4.0, -1.0, 4.0]], dtype=np.float32)
    a, b = tg.tensor(x, device=device), t.tensor(x)
    for descending in (False, True):
        v, i = a.sort(-1, descending=descending)
        vt, it = b.sort(dim=-1, descending=descending, stable=True)
        np.testing.assert_array_equal(v.numpy(), vt.numpy())
        np.testing.assert_array_equal(i.numpy(), it.numpy())
        assert i.dtype == np.int64
    v, i = a.topk(2, dim=1)
    vt, it = b.topk(2, dim=1)
    np.testing.assert_array_equal(v.numpy(), vt.numpy())
    np.testing.assert_array_equal(a.topk(1, largest=False)[0].numpy(),
                                  b.topk(1, largest=False)[0].numpy())
    np.testing.assert_array_equal(a.argmax(1).numpy(), b.argmax(1).numpy())
    np.testing.assert_array_equal(a.argmin(dim=0).numpy(), b.argmin(dim=0).numpy())
    np.testing.assert_array_equal(tg.argsort(a, 0).numpy(), t.argsort(b, 0).numpy())


def test_scatter_and_scatter_add_match_pytorch(device):
    t = torch()
    x = np.zeros((3, 5), np.float32)
    src = np.arange(1, 16, dtype=np.float32).reshape(3, 5)
    index = np.array([[0, 1, 2, 0, 4], [2, 0, 0, 1, 3]])
    ours = tg.tensor(x, device=device).scatter_add(1, tg.tensor(index),
                                                      tg.tensor(src, device=device))
    np.testing.assert_array_equal(ours.numpy(), t.tensor(x).scatter_add(
        1, t.tensor(index), t.tensor(src)).numpy())
    uniq = np.array([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]])
    ours = tg.tensor(x, device=device).scatter(1, tg.tensor(uniq),
                                                  tg.tensor(src, device=device))
    np.testing.assert_array_equal(ours.numpy(), t.tensor(x).scatter(
        1, t.tensor(uniq), t.tensor(src)).numpy())


def test_scatter_add_gradients(device):
    rng = np.random.default_rng(0)
    index = np.array([[0, 1, 1], [2, 0, 0]])
    x = tg.tensor(rng.standard_normal((3, 3)), requires_grad=True, device=device)
    s = tg.tensor(rng.standard_normal((2, 3)), requires_grad=True, device=device)
    assert tg.gradcheck(lambda x, s: x.scatter_add(0, index, s), [x, s])
    uniq = np.array([[0, 1, 2], [2, 0, 1]])
    assert tg.gradcheck(lambda x, s: x.scatter(1, uniq[:, :2], s), [x, s])
    assert tg.gradcheck(lambda x: x.gather(0, index), [x])


def test_integer_and_logical_ops(device):
    a = tg.tensor([-7, 5, 6], device=device)
    b = tg.tensor([2, -3, 4], device=device)
    assert (a // b).tolist() == [-4, -2, 1] and (a % b).tolist() == [1, -1, 2]
    assert a.fmod(b).tolist() == [-1, 2, 2]
    assert a.div(b, rounding_mode="trunc").tolist() == [-3, -1, 1]
    assert a.div(b, rounding_mode="floor").tolist() == [-4, -2, 1]
    assert (a & 3).tolist() == [1, 1, 2] and (a | 8).tolist() == [-7, 13, 14]
    assert (a ^ b).tolist() == [-5, -8, 2] and (~b).tolist() == [-3, 2, -5]
    assert (b << 1).tolist() == [4, -6, 8] and (a >> 1).tolist() == [-4, 2, 3]
    m = a > 0
    assert m.dtype == np.bool_ and (~m).tolist() == [True, False, False]
    assert (m & (b > 0)).tolist() == [False, False, True]
    assert tg.logical_or(m, b > 0).tolist() == [True, True, True]
    f = tg.tensor([-7.5, 5.0], device=device)
    assert (f % 2).tolist() == [0.5, 1.0] and f.fmod(2).tolist() == [-1.5, 1.0]
    with pytest.raises(ValueError, match="rounding_mode"):
        a.div(b, rounding_mode="up")


def test_value_tests_and_nan_to_num(device):
    x = tg.tensor([1.0, float("nan"), float("inf"), -float("inf")], device=device)
    assert x.isnan().tolist() == [False, True, False, False]
    assert x.isinf().tolist() == [False, False, True, True]
    assert tg.isfinite(x).tolist() == [True, False, False, False]
    big = float(np.finfo(np.float32).max)
    assert x.nan_to_num().tolist() == [1.0, 0.0, big, -big]
    assert x.nan_to_num(2.0, 9.0, -9.0).tolist() == [1.0, 2.0, 9.0, -9.0]
    y = tg.tensor([1.0, float("nan")], device=device, requires_grad=True)
    y.nan_to_num().sum().backward()
    assert y.grad.tolist() == [1.0, 0.0]


def test_any_all_with_dim(device):
    m = tg.tensor([[True, False], [True, True]], device=device)
    assert m.any(1).tolist() == [True, True] and m.all(dim=1).tolist() == [False, True]
    assert bool(m.any()) and not bool(m.all())


def test_creation(device):
    t = torch()
    np.testing.assert_array_equal(tg.eye(3, device=device).numpy(), t.eye(3).numpy())
    np.testing.assert_array_equal(tg.eye(2, 3).numpy(), t.eye(2, 3).numpy())
    np.testing.assert_allclose(tg.linspace(0, 1, 5, device=device).numpy(),
                               t.linspace(0, 1, 5).numpy())
    x = tg.ones(2, 3, device=device)
    assert tg.full_like(x, 7).tolist() == [[7.0] * 3] * 2
    assert tg.zeros_like(x).dtype == np.float32 and tg.empty(2, 3).shape == (2, 3)
    assert tg.randn_like(x).shape == (2, 3) and tg.rand_like(x).device == device
    r = tg.randint(5, (100,))
    assert r.dtype == np.int64 and 0 <= int(r.min().item()) and int(r.max().item()) < 5
    assert tg.randint(2, 4, (3, 2)).shape == (3, 2)


def test_multinomial():
    tg.manual_seed(0)
    p = tg.tensor([[0.0, 1.0, 3.0], [1.0, 0.0, 0.0]])
    draws = tg.multinomial(p, 1000, replacement=True)
    assert draws.shape == (2, 1000) and draws.dtype == np.int64
    assert (draws.numpy()[1] == 0).all() and (draws.numpy()[0] != 0).all()
    assert abs((draws.numpy()[0] == 2).mean() - 0.75) < 0.05
    no_rep = tg.multinomial(p[0], 2)
    assert sorted(no_rep.tolist()) == [1, 2]
    with pytest.raises(ValueError, match="multinomial"):
        tg.multinomial(p[1], 2)


def test_one_hot(device):
    ids = tg.tensor([[0, 2], [1, 1]], device=device)
    out = F.one_hot(ids, 3)
    assert out.shape == (2, 2, 3) and out.dtype == np.int64
    assert out.tolist()[0] == [[1, 0, 0], [0, 0, 1]] and F.one_hot(ids).shape[-1] == 3
    with pytest.raises(ValueError, match="one_hot"):
        F.one_hot(ids, 2)


def test_einsum_errors():
    a = tg.ones(2, 2)
    with pytest.raises(ValueError, match="einsum.*repeated in 'ii' but the sizes differ"):
        tg.einsum("ii->i", tg.ones(2, 3))
    with pytest.raises(ValueError, match="einsum: output index repeated"):
        tg.einsum("i->ii", tg.ones(2))
    with pytest.raises(ValueError, match=r"einsum.*at most one '\.\.\.'"):
        tg.einsum("......i->i", a)
    with pytest.raises(ValueError, match=r"einsum: output '\.\.\.i' has '\.\.\.' but no"):
        tg.einsum("ij->...i", a)
    with pytest.raises(ValueError, match="einsum: operand '...ijk' has 2 dims"):
        tg.einsum("...ijk->k", a)
    with pytest.raises(ValueError, match="einsum"):
        tg.einsum("ij,jk->ik", a)


def test_einsum_diagonal_gradient_lands_on_the_diagonal(device):
    x = tg.tensor(np.arange(9.0).reshape(3, 3), device=device, requires_grad=True)
    tg.einsum("ii->", x).backward()  # the trace: d/dx = I
    assert x.grad.tolist() == np.eye(3).tolist()
    assert tg.einsum("ii->i", x).tolist() == [0.0, 4.0, 8.0]


def test_linalg_namespace_and_errors():
    import tinygen.linalg

    assert tg.linalg is tinygen.linalg
    a = tg.tensor([[2.0, 0.0], [0.0, 3.0]])
    assert tg.linalg.det(a).item() == pytest.approx(6.0)
    assert tg.linalg.matrix_rank(a).dtype == np.int64 and tg.linalg.matrix_rank(a).item() == 2
    assert tg.linalg.matrix_rank(tg.ones(3, 3)).item() == 1
    assert not tg.linalg.matrix_rank(a.requires_grad_()).requires_grad  # integers: no graph
    with pytest.raises(ValueError, match="linalg.det: needs square"):
        tg.linalg.det(tg.ones(2, 3))
    with pytest.raises(ValueError, match="linalg.inv: needs a tensor with at least 2 dims"):
        tg.linalg.inv(tg.ones(3))
    with pytest.raises(ValueError, match="linalg.matrix_norm: ord must be"):
        tg.linalg.matrix_norm(tg.ones(2, 2), 3)
    with pytest.raises(ValueError, match="full_matrices=False"):
        tg.linalg.svd(tg.ones(3, 2))
    with pytest.raises(ValueError, match="linalg.solve: A"):
        tg.linalg.solve(tg.eye(3), tg.ones(2))
    with pytest.raises(ValueError, match="linalg.norm: with ord=2 and dim=None"):
        tg.linalg.norm(tg.ones(2, 2, 2), 2)
    with pytest.raises(ValueError, match="linalg.cross: dim -1 must have size 3"):
        tg.linalg.cross(tg.ones(2), tg.ones(2))
    a = tg.randn(2, 3, requires_grad=True)  # wide: the gradient exists (op_cases_linalg checks it)
    q, r = tg.linalg.qr(a)
    r.sum().backward()
    assert a.grad.shape == (2, 3) and np.isfinite(a.grad.numpy()).all()
    q, r = tg.linalg.qr(tg.randn(3, 2), mode="r")
    assert q.shape == (0, 0) and r.shape == (2, 2)


def test_linalg_matches_pytorch_on_integers_and_zero_vectors():
    t = torch()
    x = tg.tensor([[3, 4], [0, 0]])  # int64: read as float32, as torch needs a float
    assert tg.linalg.vector_norm(x, dim=1).tolist() == [5.0, 0.0]
    z = tg.zeros(3, requires_grad=True)
    tg.linalg.vector_norm(z).backward()
    zt = t.zeros(3, requires_grad=True)
    t.linalg.vector_norm(zt).backward()
    assert z.grad.tolist() == zt.grad.tolist() == [0.0, 0.0, 0.0]


def test_meshgrid_and_misc(device):
    t = torch()
    a, b = tg.arange(3, device=device), tg.arange(2, device=device)
    for indexing in ("ij", "xy"):
        ours = tg.meshgrid(a, b, indexing=indexing)
        theirs = t.meshgrid(t.arange(3), t.arange(2), indexing=indexing)
        for o, r in zip(ours, theirs):
            np.testing.assert_array_equal(o.numpy(), r.numpy())
    x = tg.tensor([1.0, 2.0], device=device)
    assert x.to(tg.float64).dtype == np.float64 and x.type_as(a).dtype == np.int64
    assert x.pow(2).tolist() == [1.0, 4.0] and x.contiguous() is x
    assert tg.exp(x).dtype == np.float32 and tg.sqrt(tg.tensor([4])).tolist() == [2.0]
    assert tg.tensor([[1, 2], [3, 4]]).nonzero().shape == (4, 2)


def test_erf_to_float32_rounding_and_its_exact_derivative(device):
    """erf's forward is Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), so it is checked at
    float32 accuracy; its backward is the exact 2/√π e^(−x²)."""
    x = np.linspace(-4, 4, 101)
    ref = np.array([math.erf(v) for v in x])
    t = tg.tensor(x, device=device, requires_grad=True)
    np.testing.assert_allclose(t.erf().numpy(), ref, atol=2e-7)
    assert tg.erf(tg.tensor(x.astype(np.float32))).dtype == np.float32
    t.erf().sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 / math.sqrt(math.pi) * np.exp(-x * x),
                               rtol=1e-12)
