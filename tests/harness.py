"""The one test harness for tinygen's Functions: every Function of tinygen.ops enters the
table `CASES` in tests/op_cases.py, and tests/test_functions.py checks every case these ways:

  (a) gradcheck: its gradients against float64 central differences (tg.gradcheck), on
      hypothesis-drawn sizes and data, and on every pinned example;
  (b) composition: its output and input gradients equal the same maths written another
      way (`composed`: a chain of other ops; for a fused Function, the chain it replaces)
      and/or the NumPy formula of its output (`reference`), where the case gives one;
  (c) float32 in -> float32 out: output and gradients stay float32, close to float64;
  (d) devices: the same answer as on the CPU on every other device of conftest's DEVICES
      ("cuda": real CuPy, or the strict CuPy emulator where there is no GPU);
  (e) PyTorch, where the case gives `torch` and torch is installed: float32 forward values,
      dtype and gradients equal PyTorch's at its float32 tolerances.

and `test_every_function_has_a_case` fails when a Function subclass in tinygen.ops
(found recursively, so subclasses of subclasses count) appears in no case's graph.

How to add a case: append ONE entry to CASES in tests/op_cases.py,

    Case("my_op", build),                       # or with options, see `Case` below

where `build(env)` makes the case from an `Env` and returns `(leaves, fn, composed)`:
  leaves    list of tensors that require grad, made with `env.leaf(*shape)` (so that the
            case can be rebuilt in float32 or on another device with the same data);
  fn        fn(*leaves) -> Tensor, calling the Function (through its public API: a Tensor
            method, F.*, or `ops.MyOp.apply(...)`); constants are bound in the closure,
            made with `env.const(array)` / `env.ints(...)` so they follow the dtype/device;
  composed  the same maths from other ops, composed(*leaves) -> Tensor, or None.
Every random choice goes through `env` (env.size, env.draw, env.rng, env.leaf, env.ints),
never through np.random directly, so that the draw replays exactly. Give a draw a name
(`env.size(1, 4, name="k")`, `env.draw(strategy, name="axes")`) and a pinned example can
fix it: `Case(..., examples=[{"axes": (1, 2, 0)}])` always runs that example, the other
draws left to hypothesis (the table's @example: 15 random draws per test in the ci
profile do not reliably reach the hard cases). Nothing else is
needed: the coverage test finds the new Function in the case's graph by itself.

A case of the tensor API (#12, tests/op_cases_tensor.py) draws its inputs whole, as a list
of float64 arrays from a hypothesis strategy: `env.leaves(strategy)` makes them leaves on the
env's dtype and device (and replays them like any other draw). Such a case usually gives
`torch`, the same maths in PyTorch, torch(*torch_leaves) -> torch.Tensor: (e) then checks,
when torch is installed, the forward values, the dtype and the gradients against PyTorch at
float32 (PyTorch's own float32 tolerances). Any case may give `torch`.

Constants' float dtype follows env.dtype (float64, or float32 in check (c)); a case whose
float32 answer is not comparable to its float64 one (a random mask drawn per dtype) sets
`float32_vs_composed=True` and is compared with its own composition in float32.
"""

import dataclasses
from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

import tinygen as tg
from tinygen.autograd import Function
from tinygen.backend import to_device


@dataclasses.dataclass
class Case:
    """One entry of the table. Only `name` and `build` are required.

    reference: NumPy formula of the output, reference(*leaf_arrays_float64) -> array
    examples:  pinned draws, each a dict {draw name: value}, always checked
    rtol, atol: gradcheck tolerances (float64 central differences)
    float32_vs_composed: compare float32 with the float32 composition, not with float64
    torch:     the same maths in PyTorch, torch(*torch_leaves) -> torch.Tensor, for check (e)
    """

    name: str
    build: Callable
    reference: Callable | None = None
    examples: list = dataclasses.field(default_factory=list)
    rtol: float = 1e-4
    atol: float = 1e-5
    float32_vs_composed: bool = False
    torch: Callable | None = None


class Env:
    """Draws a case's sizes and data, and makes its tensors on one dtype and device.

    Everything random comes from `draw` (hypothesis's data.draw), and arrays are generated
    from drawn seeds, so `replay` rebuilds exactly the same case in another dtype or on
    another device. With `fixed` (a pinned example), the draws it names take its values
    and the others are drawn as usual.
    """

    def __init__(self, draw, dtype=np.float64, device="cpu", fixed=None):
        self._draw, self.dtype, self.device = draw, dtype, device
        self.fixed = fixed
        self.drawn = []

    def draw(self, strategy, name=None):
        if self.fixed is not None and name in self.fixed:
            value = self.fixed[name]
        else:
            value = self._draw(strategy)
        self.drawn.append(value)
        return value

    def size(self, lo=1, hi=4, name=None):
        return self.draw(st.integers(lo, hi), name)

    def rng(self):
        return np.random.default_rng(self.draw(st.integers(0, 2**32 - 1)))

    def normal(self, shape, scale=1.0, min_abs=0.0):
        """float64 N(0, scale²) data; with min_abs, every |x| >= min_abs (away from kinks)."""
        a = self.rng().standard_normal(shape) * scale
        return np.where(a < 0, -1, 1) * (np.abs(a) + min_abs)

    def leaf(self, *shape, scale=1.0, min_abs=0.0, positive=False):
        """A tensor that requires grad, on this env's dtype and device; positive=True draws
        |x| + min_abs (for log, sqrt, fractional powers)."""
        data = self.normal(shape, scale, min_abs)
        data = np.abs(data) if positive else data
        return tg.tensor(data.astype(self.dtype), device=self.device, requires_grad=True)

    def leaves(self, strategy, name="inputs"):
        """Leaves (on this env's dtype and device) from a strategy drawing float64 arrays."""
        return [tg.tensor(np.asarray(a, np.float64).astype(self.dtype), device=self.device,
                          requires_grad=True) for a in self.draw(strategy, name)]

    def ints(self, lo, hi, shape):
        return self.rng().integers(lo, hi, size=shape)

    def const(self, array):
        """A NumPy array moved to this env's device (floats cast to its dtype)."""
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(self.dtype)
        return to_device(array, self.device)


def replay(env, dtype=np.float64, device="cpu"):
    """The same case as `env` drew, rebuilt on another dtype or device."""
    drawn = iter(env.drawn)
    return Env(lambda strategy: next(drawn), dtype=dtype, device=device)


def run(fn, leaves, seed=0):
    """fn's output and the gradients of sum(out * w) for fixed random weights w."""
    for t in leaves:
        t.grad = None
    out = fn(*leaves)
    w = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    (out * tg.tensor(to_device(w, out.device))).sum().backward()
    grads = [np.zeros(t.shape) if t.grad is None else t.grad.numpy() for t in leaves]
    return out, grads


# ---- the four checks, each on one Env ------------------------------------------------------
def check_gradcheck(case, env):
    leaves, fn, _ = case.build(env)
    assert tg.gradcheck(fn, leaves, atol=case.atol, rtol=case.rtol)
    for t in leaves:  # gradcheck's comparison lets a NaN gradient through; catch it here
        assert t.grad is None or np.isfinite(t.grad.numpy()).all()


def check_composition(case, env):
    leaves, fn, composed = case.build(env)
    out, grads = run(fn, leaves)
    if case.reference is not None:
        want = np.asarray(case.reference(*[t.numpy() for t in leaves]))
        assert out.shape == want.shape, f"{case.name}: shape {out.shape} != {want.shape}"
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-12)
    if composed is None:
        return
    want, want_grads = run(composed, leaves)
    assert out.shape == want.shape
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-9, atol=1e-12)
    for g, want_g in zip(grads, want_grads):
        np.testing.assert_allclose(g, want_g, rtol=1e-9, atol=1e-12)


def check_float32(case, env64):
    leaves64, fn, _ = case.build(env64)
    want, want_grads = run(fn, leaves64)
    leaves, fn, composed = case.build(replay(env64, dtype=np.float32))
    out, grads = run(fn, leaves)
    assert out.dtype == np.float32, f"{case.name} returned {out.dtype}"
    for t in leaves:
        assert t.grad is None or t.grad.dtype == np.float32, f"{case.name}: {t.grad.dtype}"
    if case.float32_vs_composed:
        want, want_grads = run(composed, leaves)
    # float32 keeps ~7 digits; layer_norm's gradient loses a few more when a row's spread
    # is small (it scales with 1/std), so the tolerance is on the scale of the largest entry
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-4,
                               atol=1e-5 * max(1, np.abs(want.numpy()).max(initial=0)))
    for g, want_g in zip(grads, want_grads):
        np.testing.assert_allclose(g, want_g, rtol=1e-3,
                                   atol=1e-4 * max(1, np.abs(want_g).max(initial=0)))


def check_device(case, env, device):
    leaves, fn, _ = case.build(env)
    want, want_grads = run(fn, leaves)
    leaves, fn, _ = case.build(replay(env, device=device))
    out, grads = run(fn, leaves)
    assert out.device == device
    assert all(t.grad is None or t.grad.device == device for t in leaves)
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-9, atol=1e-12)
    for g, want_g in zip(grads, want_grads):
        np.testing.assert_allclose(g, want_g, rtol=1e-9, atol=1e-12)


def check_torch(case, env64):
    """(e): float32 in, the same values (PyTorch's float32 tolerances), dtype and gradients."""
    import torch

    case.build(env64)  # draws the case; its float32 replay is what both libraries get
    leaves, fn, _ = case.build(replay(env64, dtype=np.float32))
    theirs = [torch.tensor(t.numpy(), requires_grad=True) for t in leaves]
    out, grads = run(fn, leaves)
    ref = case.torch(*theirs)
    assert out.shape == tuple(ref.shape), f"{case.name}: shape {out.shape} != {ref.shape}"
    assert out.dtype == np.float32, f"{case.name} returned {out.dtype}"
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1.3e-5, atol=1e-5)
    if not ref.requires_grad:
        return
    w = np.random.default_rng(0).standard_normal(out.shape).astype(np.float32)  # as `run`
    (ref * torch.tensor(w)).sum().backward()
    for g, t in zip(grads, theirs):
        want = np.zeros(t.shape, np.float32) if t.grad is None else t.grad.numpy()
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-4)


# ---- coverage ------------------------------------------------------------------------------
def all_functions():
    """Every Function subclass defined in tinygen.ops, found recursively."""
    import tinygen.ops  # noqa: F401  (imports every ops module)

    found, stack = set(), [Function]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith("tinygen.ops"):
                found.add(sub)
    return found


def functions_in_graph(out):
    """The Function classes that recorded `out` and everything it was computed from."""
    seen, found, stack = set(), set(), [out]
    while stack:
        t = stack.pop()
        if id(t) in seen or t._ctx is None:
            continue
        seen.add(id(t))
        found.add(type(t._ctx))
        stack.extend(t._ctx.inputs)
    return found
