"""tinygen.blocked: row blocks on a thread pool give the plain whole-array formula's results
(any thread count, odd sizes, strided inputs, float32 kept), and the ops built on it (GELU,
layer norm, attention's softmax, Adam) equal their unblocked selves. On CuPy (the emulator
here) the formula runs once on the whole arrays."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import tinygen as tg
from tinygen import blocked, nn, ops, optim
from tinygen.backend import get_array_module


@pytest.fixture(params=[1, 2, 3, "auto"])
def threads(request):
    before = blocked._state["threads"]
    blocked.set_threads(request.param)
    yield blocked.threads()
    blocked._state["threads"] = before


def affine_tanh(x, out, w):  # a multi-pass formula with a shared operand, written in place
    xp = get_array_module(x)
    xp.multiply(x, w, out=out)
    out += 0.5
    xp.tanh(out, out=out)


def rand(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape", [(7, 13), (1001, 3), (5, 9, 11), (97,)])
def test_blocks_equal_whole_formula(threads, shape):
    x = rand(shape)
    w = rand(shape[-1:], 1) if len(shape) > 1 else np.float32(0.7)  # a row's operand
    want = np.empty_like(x)
    affine_tanh(x, want, w)
    out = np.empty_like(x)
    blocked.in_row_blocks(affine_tanh, x, out, shared=(w,), block_bytes=40)  # many blocks
    np.testing.assert_array_equal(out, want)
    assert out.dtype == np.float32


def test_strided_inputs_and_outputs(threads):
    base = rand((40, 30))
    x = base[::2, ::3]                       # [20, 10], neither C- nor F-contiguous
    out_base = np.zeros((20, 20), np.float32)
    out = out_base[:, ::2]                   # a strided output view
    blocked.in_row_blocks(affine_tanh, x, out, shared=(np.float32(2),), block_bytes=16)
    want = np.empty(x.shape, np.float32)
    affine_tanh(x, want, np.float32(2))
    np.testing.assert_array_equal(out, want)
    assert not out_base[:, 1::2].any()       # nothing written between the view's columns


def test_each_row_exactly_once_on_the_pool(threads):
    seen, names = np.zeros(1000, int), set()

    def mark(rows):
        seen[rows[:, 0]] += 1
        names.add(threading.current_thread().name)

    blocked.in_row_blocks(mark, np.arange(1000)[:, None], block_bytes=8 * 7)
    assert (seen == 1).all()
    assert len(names) <= threads
    pool_threads = {t for t in threading.enumerate() if t.name.startswith("tinygen-blocked")}
    blocked.in_row_blocks(mark, np.arange(1000)[:, None], block_bytes=8 * 7)
    assert {t for t in threading.enumerate()
            if t.name.startswith("tinygen-blocked")} == pool_threads  # persistent: no new ones


def test_small_arrays_and_disabled_run_once():
    calls = []
    x = rand((64, 64))
    blocked.in_row_blocks(lambda a: calls.append(a.shape), x)  # 16 KiB: one block
    with blocked.disabled():
        blocked.in_row_blocks(lambda a: calls.append(a.shape), x, block_bytes=16)
    assert calls == [(64, 64), (64, 64)]


def test_an_error_in_a_block_reaches_the_caller(threads):
    def fail(a):
        if a[0, 0] >= 500:
            raise FloatingPointError("block failed")

    with pytest.raises(FloatingPointError, match="block failed"):
        blocked.in_row_blocks(fail, np.arange(1000.0)[:, None], block_bytes=80)
    blocked.in_row_blocks(lambda a: None, np.arange(1000.0)[:, None], block_bytes=80)  # still up


def test_set_threads_checks_its_argument():
    for bad in (0, -1, 1.5, True, "two"):
        with pytest.raises(ValueError, match="blocked.set_threads"):
            blocked.set_threads(bad)


def test_rows_must_share_their_first_axis():
    with pytest.raises(ValueError, match="in_row_blocks: the row arrays must share"):
        blocked.in_row_blocks(lambda a, b: None, rand((10, 4)), rand((9, 4)), block_bytes=16)


def test_cupy_arrays_get_the_whole_formula_once(device):
    if device == "cpu":
        pytest.skip("the device path")
    x = tg.randn(300, 40, device=device).data
    xp = get_array_module(x)
    calls = []

    def f(a, out):
        calls.append(type(a))
        xp.multiply(a, 2, out=out)

    out = xp.empty_like(x)
    blocked.in_row_blocks(f, x, out, block_bytes=16)
    assert calls == [type(x)]
    np.testing.assert_array_equal(tg.tensor(out).numpy(), 2 * tg.tensor(x).numpy())


# ---- the ops on the blocks: equal to the whole-array formula ------------------------------

def both_ways(run, monkeypatch):
    """run() with tiny blocks on the pool, then with blocking off: the two results."""
    monkeypatch.setattr(blocked, "BLOCK_BYTES", 1000)
    got = run()
    with blocked.disabled():
        want = run()
    return got, want


def assert_same(got, want):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def gelu_run(x, g):
    f = ops.GELUFunction()
    return f.forward(x), f.backward(g)


def test_gelu_blocked(threads, monkeypatch):
    x, g = rand((5, 37, 19)) * 4, rand((5, 37, 19), 1)
    assert_same(*both_ways(lambda: gelu_run(x, g), monkeypatch))
    out, _ = gelu_run(x, g)  # the tanh form it stands for, within float32 rounding
    k = np.sqrt(2 / np.pi)
    want = 0.5 * x * (1 + np.tanh(k * (x + 0.044715 * x.astype(np.float64) ** 3)))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    assert np.isfinite(gelu_run(np.float32([-1e4, 1e4, 0]), np.ones(3, np.float32))[1]).all()


def test_layer_norm_blocked(threads, monkeypatch):
    x, g = rand((3, 41, 24)), rand((3, 41, 24), 1)
    w, b = rand(24, 2), rand(24, 3)

    def run():
        f = ops.LayerNormFunction()
        f.needs_input_grad = (True, True, True)
        return (f.forward(x, w, b), *f.backward(g))

    assert_same(*both_ways(run, monkeypatch))


def test_attention_softmax_blocked(threads, monkeypatch):
    q, k, v, g = (rand((2, 3, 33, 8), s) for s in range(4))
    drop = (rand((2, 3, 33, 33), 5) > 0).astype(np.float32) * 2

    def run(dropout):
        f = ops.ScaledDotProductAttention()
        return (f.forward(q, k, v, is_causal=True, dropout=dropout), *f.backward(g))

    assert_same(*both_ways(lambda: run(None), monkeypatch))
    assert_same(*both_ways(lambda: run(drop), monkeypatch))


def test_adamw_blocked(threads, monkeypatch):
    def run():
        tg.manual_seed(0)
        params = [nn.Parameter(tg.randn(50, 7)), nn.Parameter(tg.randn(13))]
        opt = optim.AdamW(params, lr=0.1, weight_decay=0.1)
        for step in range(3):
            for i, p in enumerate(params):
                p.grad = tg.tensor(rand(p.shape, 10 * step + i))
            opt.step()
        return [p.data for p in params] + [opt.state[params[0]]["exp_avg_sq"]]

    assert_same(*both_ways(run, monkeypatch))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_pool(threads):
    import os
    x = np.arange(4000.0)[:, None]
    blocked.in_row_blocks(lambda a: None, x, block_bytes=80)    # the parent's pool is up
    pid = os.fork()
    if pid == 0:  # the child: blocks must run (not wait for the parent's threads)
        out = np.zeros_like(x)
        blocked.in_row_blocks(lambda a, o: np.add(a, 1, out=o), x, out, block_bytes=80)
        os._exit(0 if (out[:, 0] == x[:, 0] + 1).all() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# ---- matrix products shared out by hand -------------------------------------------------
@pytest.fixture(params=[1, 2, 3])
def blas_threads(request, monkeypatch):
    """BLAS at n threads, the split products on (TINYGEN_BLOCKED_MATMUL=1) and every product
    large enough to be split."""
    before = tg.get_num_threads()
    monkeypatch.setitem(blocked._state, "matmul", True)
    monkeypatch.setattr(blocked, "MATMUL_MIN_MACS", 1)
    tg.set_num_threads(request.param)
    yield request.param
    tg.set_num_threads(before)


@pytest.mark.parametrize("shapes", [((7, 13), (13, 50)), ((40, 9), (9, 5)),
                                    ((3, 6, 11), (3, 11, 29)), ((2, 33, 4), (4, 3)),
                                    ((6, 1), (1, 50))])
def test_split_matmul_equals_matmul(blas_threads, shapes):
    """matmul cuts the output's longer axis (rows or columns, batched or not) into blocks:
    each entry is the same dot product, a @ b's within float32 rounding (BLAS's kernels
    may order a block's edge differently); OpenBLAS gets its thread count back afterwards."""
    a, b = rand(shapes[0]), rand(shapes[1], 1)
    got = blocked.matmul(a, b)
    assert got.dtype == np.float32 and got.shape == (a @ b).shape
    np.testing.assert_allclose(got, a @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got, blocked.matmul(a, b))  # the same on every run
    assert tg.get_num_threads() == blas_threads


@pytest.mark.parametrize("shapes", [((5, 1000), (1000, 7)), ((2, 3, 301), (2, 301, 4))])
def test_split_inner_matmul_sums_in_a_fixed_order(blas_threads, shapes):
    a, b = rand(shapes[0]), rand(shapes[1], 1)
    got = blocked.matmul_long_inner(a, b)
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got, blocked.matmul_long_inner(a, b))  # run to run
    assert got.dtype == np.float32 and tg.get_num_threads() == blas_threads


def test_split_matmul_only_on_numpy_and_large(monkeypatch):
    """Below MATMUL_MIN_MACS, on one BLAS thread, disabled() and TINYGEN_BLOCKED_MATMUL=0
    (the default) it is a plain a @ b (no pool, no change of OpenBLAS's threads)."""
    calls = []
    monkeypatch.setitem(blocked._state, "matmul", True)
    monkeypatch.setattr(blocked, "_run_one_thread_blas", lambda *a: calls.append(a))
    a, b = rand((64, 64)), rand((64, 64), 1)
    before = tg.get_num_threads()
    tg.set_num_threads(2)
    try:
        blocked.matmul(a, b)                                  # 2^18 MACs: too small
        monkeypatch.setattr(blocked, "MATMUL_MIN_MACS", 1)
        with blocked.disabled():
            blocked.matmul(a, b)
        monkeypatch.setitem(blocked._state, "matmul", False)
        blocked.matmul_long_inner(a, b)
        assert calls == []
        monkeypatch.setitem(blocked._state, "matmul", True)
        blocked.matmul(a, b)
        assert len(calls) == 1
    finally:
        tg.set_num_threads(before)


def test_block_size_follows_the_l2_cache(tmp_path):
    assert 256 * 1024 <= blocked.BLOCK_BYTES <= 2 << 20
    for index, level, size in (("index0", "1", "48K"), ("index2", "2", "1024K")):
        (tmp_path / index).mkdir()
        (tmp_path / index / "level").write_text(level + "\n")
        (tmp_path / index / "size").write_text(size + "\n")
    assert blocked.l2_bytes(tmp_path) == 1 << 20
    assert blocked.l2_bytes(tmp_path / "absent", default=12345) == 12345


def test_benchmarks_products_timer_counts_every_layer_product_and_restores_them():
    """benchmarks/common.products_timed, which prints each conv workload's BLAS floor: a
    Linear's forward and backward are three [8, 16] x [16, 32]-sized products; the patched
    names are put back afterwards."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
    from common import products_timed

    from tinygen.ops import conv, linear

    layer = nn.Linear(16, 32)
    x = tg.tensor(np.ones((8, 16), np.float32), requires_grad=True)
    with products_timed() as products:
        layer(x).sum().backward()
        assert linear.matmul is not blocked.matmul
    assert products["flops"] == 3 * 2 * 8 * 16 * 32
    assert products["seconds"] > 0
    assert linear.matmul is blocked.matmul and conv.matmul_long_inner is blocked.matmul_long_inner


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_benchmarks_peak_memory_is_the_childs_own_not_its_parents():
    """benchmarks/procmem.peak_rss_mib, gpt.py's peak MiB column: a child started while this
    process holds 300 MiB more reports its own peak, where ru_maxrss would report ours."""
    bench = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks")
    ballast = np.ones(300 * 2**20 // 8)  # touched, so resident
    code = f"import sys; sys.path.insert(0, {bench!r}); import procmem; print(procmem.peak_rss_mib())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    child = float(out.stdout.split()[-1])
    assert 1 < child < 200, child
    assert ballast.sum() > 0
