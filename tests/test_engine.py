"""The autograd engine: how gradients accumulate, when the graph is recorded, freed and
retained, and what tg.gradcheck itself catches. Op-by-op gradients are in test_ops*.py."""

import gc
import sys

import numpy as np
import pytest
from conftest import SHAPES, arrays, leaf
from hypothesis import given

import tinygen as tg
from tinygen.autograd import Function


# ---- accumulation -------------------------------------------------------------------------
@given(x=arrays(SHAPES))
def test_a_tensor_used_twice_gets_both_gradients(device, x):
    t = leaf(x, device)
    (t * t + t).sum().backward()  # d/dx (x² + x) = 2x + 1
    np.testing.assert_allclose(t.grad.numpy(), 2 * x + 1, rtol=1e-12)


def test_diamond_graph(device):
    #      x
    #      |
    #    a = 2x
    #   /      \
    # b = 3a   c = tanh(a)
    #   \      /
    #    d = b + c
    x0 = np.array([-0.7, 0.1, 1.3])
    x = leaf(x0, device)
    a = x * 2
    d = a * 3 + a.tanh()
    d.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (3 + 1 - np.tanh(2 * x0) ** 2), rtol=1e-12)


def test_grad_accumulates_over_backward_calls_until_zeroed(device):
    x = tg.tensor([1.0, -2.0], device=device, requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, -4.0])
    x.zero_grad()
    assert x.grad is None


def test_leaf_grads_do_not_alias(device):
    """Add hands the same gradient array to both inputs; each leaf must get its own copy."""
    a = tg.tensor([1.0, 2.0], device=device, requires_grad=True)
    b = tg.tensor([3.0, 4.0], device=device, requires_grad=True)
    (a + b).sum().backward()
    a.grad.data += 100
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])

    a.grad = b.grad = None
    g = tg.ones(2, device=device)
    (a + b).backward(g)  # an explicit gradient: neither leaf may hold the caller's array
    g.data *= 0
    b.grad.data -= 5
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 1.0])

    a.grad = None
    h = (a * 1).reshape(2, 1).retain_grad()
    (h + a.reshape(2, 1)).sum().backward()
    h.grad.data += 7
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0])


def test_leaf_grad_of_a_view_owns_its_memory(device):
    x = tg.tensor([[1.0, 2.0, 3.0]], device=device, requires_grad=True)
    x.sum().backward()  # Sum's backward is a read-only broadcast view
    x.grad.data[0, 0] = 5.0  # must not raise (a read-only view would)
    assert x.grad.data.base is None


# ---- graph recording ----------------------------------------------------------------------
def test_requires_grad_propagates(device):
    a = tg.tensor([1.0], device=device, requires_grad=True)
    b = tg.tensor([2.0], device=device)
    assert (a * b).requires_grad and (b * a).requires_grad and (a + 1).requires_grad
    assert not (b * b).requires_grad and (b * b).is_leaf
    assert a.is_leaf and not (a * b).is_leaf
    y = a * b
    y.sum().backward()
    assert y.grad is None  # non-leaves keep no .grad unless asked
    assert b.grad is None


def test_the_graph_is_the_one_recorded_when_the_ops_ran(device):
    """requires_grad counts when an op runs, not at backward (PyTorch's rule): a weight frozen
    while the loss was built gets no gradient even if unfrozen before backward, and one
    frozen after the loss was built still gets its gradient."""
    w, v = (tg.tensor([3.0], device=device, requires_grad=True) for _ in range(2))
    x = tg.tensor([2.0], device=device, requires_grad=True)
    w.requires_grad_(False)
    loss = (w * x + v * x).sum()
    w.requires_grad_(True)
    v.requires_grad_(False)
    loss.backward()
    assert w.grad is None
    np.testing.assert_allclose(v.grad.numpy(), [2.0])
    np.testing.assert_allclose(x.grad.numpy(), [6.0])


def test_retain_grad_keeps_a_non_leaf_gradient(device):
    x = tg.tensor([1.0, 2.0], device=device, requires_grad=True)
    h = (x * 3).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), [6.0, 12.0])
    np.testing.assert_allclose(x.grad.numpy(), [18.0, 36.0])


def test_no_grad_records_no_graph(device):
    x = tg.tensor([1.0, 2.0], device=device, requires_grad=True)
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = (x * 2).exp().sum()
        with tg.enable_grad():
            z = x * 2
    assert tg.is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    assert z.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_as_decorator(device):
    @tg.no_grad()
    def evaluate(t):
        return t * 2

    x = tg.tensor([1.0], device=device, requires_grad=True)
    y = evaluate(x)
    assert not y.requires_grad and y._ctx is None
    assert tg.is_grad_enabled()
    assert (x * 2).requires_grad


def test_no_grad_restores_mode_after_an_exception():
    with pytest.raises(KeyError), tg.no_grad():
        raise KeyError("boom")
    assert tg.is_grad_enabled()


def test_no_grad_decorator_is_reentrant():
    @tg.no_grad()
    def countdown(n):
        return countdown(n - 1) if n else None

    try:
        countdown(2)
        assert tg.is_grad_enabled()
    finally:
        tg.enable_grad().__enter__()  # switch grad mode back on for the tests that follow


def test_detach_cuts_the_graph_and_shares_data(device):
    x = tg.tensor([1.0, 3.0], device=device, requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d._ctx is None and d.data is x.data
    (d * x).sum().backward()  # d is a constant: the gradient is d, not 2x
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 3.0])


# ---- backward -----------------------------------------------------------------------------
def test_ten_thousand_op_chain_needs_no_recursion(device):
    limit = sys.getrecursionlimit()
    x = tg.tensor(1.0, dtype=np.float64, device=device, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001 + 0.0
    y.backward()
    assert sys.getrecursionlimit() == limit
    np.testing.assert_allclose(x.grad.item(), 1.0001 ** 10_000, rtol=1e-9)
    del y
    gc.collect()  # tearing the long chain down must not overflow the C stack either


def test_backward_frees_saved_arrays(device):
    x = tg.tensor([1.0, 2.0], device=device, requires_grad=True)
    w = tg.tensor([3.0, 4.0], device=device, requires_grad=True)
    out = x * w
    assert "a" in out._ctx.__dict__ and not out._ctx.freed
    out.sum().backward()
    assert out._ctx.freed
    assert set(out._ctx.__dict__) == {"inputs", "needs_input_grad", "freed"}  # the links only
    with pytest.raises(RuntimeError, match="retain_graph"):
        out.sum().backward()


def test_retain_graph_allows_a_second_backward(device):
    x = tg.tensor([1.0, 2.0], device=device, requires_grad=True)
    loss = (x * x).exp().sum()
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    assert not loss._ctx.freed
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_backward_on_a_non_scalar_needs_a_gradient(device):
    x = tg.tensor([1.0, 2.0], device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"\(2,\)"):
        (x * 2).backward()


def test_backward_with_an_explicit_gradient(device):
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]], device=device, requires_grad=True)
    (x * x).backward(tg.tensor([[1.0, 0.0], [2.0, -1.0]], device=device))
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0, 0.0], [12.0, -8.0]])
    x.grad = None
    (x * 2).backward(leaf(np.ones((2, 2)), device, requires_grad=False).data)  # a raw array
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 2.0))
    assert x.grad.dtype == np.float32  # the gradient is cast to the tensor's dtype
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 2\)"):
        (x * 2).backward(tg.ones(3, device=device))


def test_backward_of_a_leaf_itself(device):
    x = tg.tensor(2.0, device=device, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0


def test_integer_tensors_cannot_require_grad(device):
    with pytest.raises(TypeError, match="int64"):
        tg.tensor([1, 2], device=device, requires_grad=True)
    with pytest.raises(TypeError, match="floating"):
        tg.zeros(2, dtype=tg.int64, device=device, requires_grad=True)
    with pytest.raises(TypeError, match="requires_grad"):
        tg.arange(3, device=device).requires_grad_()


# ---- gradcheck, the tool the op tests rely on ---------------------------------------------
class _WrongSquare(tg.Function):
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad):
        return grad * self.x  # should be 2x


def test_gradcheck_catches_a_wrong_backward(device):
    x = leaf([0.5, -1.5, 2.0], device)
    with pytest.raises(AssertionError, match="analytic"):
        tg.gradcheck(lambda t: _WrongSquare.apply(t), [x])
    assert tg.gradcheck(lambda t: t * t, [x])


def test_gradcheck_rejects_bad_inputs(device):
    with pytest.raises(TypeError, match="float64"):
        tg.gradcheck(lambda t: t * 2, [tg.ones(2, device=device, requires_grad=True)])
    with pytest.raises(ValueError, match="requires_grad"):
        tg.gradcheck(lambda t: t * 2, [leaf([1.0], device, requires_grad=False)])


class _NanGrad(tg.Function):
    def forward(self, x):
        return x * 1

    def backward(self, grad):
        return grad * np.nan


def test_gradcheck_rejects_a_nan_gradient():
    with pytest.raises(AssertionError, match="nan"):
        tg.gradcheck(lambda t: _NanGrad.apply(t), [leaf([1.0, 2.0], "cpu")])


def test_gradcheck_on_a_0d_input(device):
    assert tg.gradcheck(lambda t: (t * t).exp(), [leaf(0.5, device)])


def test_gradcheck_on_a_non_contiguous_input():
    x = tg.tensor(np.arange(12.0).reshape(3, 4).T, requires_grad=True)
    assert tg.gradcheck(lambda t: (t * t).sum(), [x])


# ---- gradients that reach two leaves through one fresh array -----------------------------
def test_a_fresh_gradient_array_reaching_two_leaves_is_not_aliased(device):
    """Mul's backward makes a fresh (non-view) array; Add hands that same array to both
    leaves. Each .grad must own it: the engine copies the second time it stores one."""
    a = tg.tensor([1.0, 2.0], device=device, requires_grad=True)
    b = tg.tensor([3.0, 4.0], device=device, requires_grad=True)
    ((a + b) * tg.tensor([2.0, 3.0], device=device)).sum().backward()
    assert a.grad.data is not b.grad.data
    a.grad.data += 100
    np.testing.assert_array_equal(b.grad.numpy(), [2.0, 3.0])


def test_clip_grad_norm_after_a_real_backward(device):
    """Two parameters fed the same fresh gradient array: clipping scales each once."""
    from tinygen import nn, optim

    w1 = nn.Parameter(tg.tensor([1.0, 2.0], device=device).data)
    w2 = nn.Parameter(tg.tensor([3.0, 4.0], device=device).data)
    ((w1 + w2) * tg.tensor([3.0, 4.0], device=device)).sum().backward()  # both grads [3, 4]
    norm = optim.clip_grad_norm_([w1, w2], max_norm=1.0)
    assert abs(norm - np.sqrt(50.0)) < 1e-5
    scale = 1.0 / (np.sqrt(50.0) + 1e-6)
    for w in (w1, w2):
        np.testing.assert_allclose(w.grad.numpy(), np.array([3.0, 4.0]) * scale, rtol=1e-5)


# ---- what a learner's own Function hands the engine ----------------------------------------
class _Scale(Function):
    """y = x * w for x [N] and w [N]; its backward is replaced by each test."""

    def forward(self, x, w):
        self.x, self.w = x, w
        return x * w

    def backward(self, grad):
        return grad * self.w, grad * self.x


def test_a_backward_returning_too_few_gradients_is_an_error(device):
    class Forgetful(_Scale):
        def backward(self, grad):
            return grad * self.w  # forgot the weight's gradient

    x = tg.ones(8, dtype=tg.float64, device=device, requires_grad=True)
    w = tg.ones(8, dtype=tg.float64, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Forgetful\.backward returned 1 gradient.*2 input"):
        Forgetful.apply(x, w).sum().backward()


def test_a_backward_returning_too_many_gradients_is_an_error(device):
    class Generous(_Scale):
        def backward(self, grad):
            return grad * self.w, grad * self.x, grad

    x = tg.ones(8, dtype=tg.float64, device=device, requires_grad=True)
    w = tg.ones(8, dtype=tg.float64, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Generous\.backward returned 3 gradient.*2 input"):
        Generous.apply(x, w).sum().backward()


def test_a_gradient_of_the_wrong_shape_names_the_function_input_and_shapes(device):
    class Summed(_Scale):
        def backward(self, grad):
            return grad * self.w, (grad * self.x).sum(keepdims=True)  # [1], not [8]

    x = tg.ones(8, dtype=tg.float64, device=device, requires_grad=True)
    w = tg.ones(8, dtype=tg.float64, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Summed\.backward .* shape \(1,\) for input 1, "
                                           r"whose shape is \(8,\)"):
        Summed.apply(x, w).sum().backward()


def test_a_gradient_that_broadcasts_to_its_input_is_summed():
    class Wide(_Scale):
        def backward(self, grad):
            return grad * self.w, grad[None, :] * self.x  # [1, 8]: sums back to [8]

    x = tg.ones(8, dtype=tg.float64, requires_grad=True)
    w = tg.ones(8, dtype=tg.float64, requires_grad=True)
    Wide.apply(x, w).sum().backward()
    assert w.grad.shape == (8,)


@pytest.mark.parametrize("bad", [np.ones(8), [1.0] * 8, 2.0], ids=["array", "list", "float"])
def test_apply_with_a_non_tensor_input_says_to_wrap_it(device, bad):
    x = tg.ones(8, dtype=tg.float64, device=device, requires_grad=True)
    with pytest.raises(TypeError, match=r"_Scale\.apply: input 1 is a .*not a Tensor.*"
                                        r"tg\.tensor.*keyword option"):
        _Scale.apply(x, bad)
