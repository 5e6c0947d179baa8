"""Blocked evaluation on the CPU's cores: run an elementwise formula over row blocks of its
arrays, the blocks shared out between a few threads.

A NumPy expression such as GELU's `x * (1 + exp(-2z))⁻¹` is a chain of ufuncs, each one a
full pass over memory that writes a temporary as large as x. Two things make that slow
next to PyTorch, which runs one fused, vectorised loop on every core:

1. Each pass streams the whole array from L3 or memory. Evaluating the same chain on a
   block of rows at a time keeps the block's temporaries in L2 (half a MiB per core on the
   2-core AMD EPYC these figures come from), so every pass after the first reads cache.
2. One ufunc runs on one core. NumPy releases the GIL inside its loops, so two threads,
   each evaluating the chain on its own blocks, use both cores; the Python between two
   ufuncs (about a microsecond) is all that holds the GIL.

`in_row_blocks(f, *rows)` does both: it calls `f` on matching row blocks of the arrays, on
`threads()` threads, and waits for them all. The op's formula is `f`, written on whole
arrays and read as such; it must be elementwise along axis 0 (each output row depends
only on the same input rows), and it writes its results into output arrays passed in `rows` (`out=`), not return them.

Measured on that machine (2 cores shared with other jobs, NumPy 2.4.6, float32; the figures
in docs/cpu_speed.md): the blocks, on one thread, cut the CPU time of Adam's update at
shakespeare-char's size (10.7M parameters) from 88 to 46 ms and of GELU forward + backward
at [2048, 1536] from 45 to 29 ms. A second thread did NOT win there: OpenBLAS's idle worker
threads spin for a while after every BLAS call, and every elementwise op of a training step
follows one, so the pool's thread fought them for the second core (layer norm and attention
took 4x and 7x more CPU time). Hence one thread by default; set_threads("auto") or
TINYGEN_BLOCKED_THREADS=auto shares the blocks among tg.set_num_threads threads (try it with
OPENBLAS_THREAD_TIMEOUT set low, or on more cores).

The same pool shares out large matrix products (`matmul`, `matmul_long_inner`: blocks of
the output, or of the inner axis, each a one-thread BLAS call), which conv layers and
Linear call: OpenBLAS's own threads stall when a core is busy (the section below). It is
off unless TINYGEN_BLOCKED_MATMUL=1: on a quiet machine OpenBLAS's threads are faster.

Only NumPy arrays are blocked. Small arrays (a block's worth or less), CuPy arrays (one
kernel per ufunc on the GPU already uses all of it) and `disabled()` run `f` once on the
whole arrays: the plain expression, what the results are compared with.
"""

import contextlib
import itertools
import os
import queue
import threading

import numpy as np

from tinygen.backend import get_array_module, row_sums
from tinygen.threads import get_num_threads, set_num_threads


def l2_bytes(cache_dir="/sys/devices/system/cpu/cpu0/cache", default=512 * 1024):
    """The size of one core's L2 cache, from Linux's sysfs (`default` where it cannot tell)."""
    try:
        for index in sorted(os.listdir(cache_dir)):
            with open(os.path.join(cache_dir, index, "level")) as f:
                if f.read().strip() != "2":
                    continue
            with open(os.path.join(cache_dir, index, "size")) as f:
                size = f.read().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
            return int(size.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return default


# bytes of the widest array per block: one core's L2, within 256 KiB .. 2 MiB. Measured
# (docs/cpu_speed.md) on a 1 MiB L2 (AMD EPYC, Zen 4, AVX-512): 1 MiB blocks beat 256 KiB
# ones by 5-12 % on GELU and AdamW at shakespeare-char's sizes and tie at nanoGPT's CPU
# config; on the earlier 512 KiB-L2 machine 256 KiB beat smaller blocks (512 KiB, what
# this picks there, was not measured).
BLOCK_BYTES = min(max(l2_bytes(), 256 * 1024), 2 << 20)

# threads: 1 by default (measured below); "auto" (None) follows tg.set_num_threads
_THREADS = os.environ.get("TINYGEN_BLOCKED_THREADS", "1")
_state = {"enabled": os.environ.get("TINYGEN_BLOCKED", "1") != "0", "pool": None,
          "matmul": os.environ.get("TINYGEN_BLOCKED_MATMUL", "0") == "1",   # opt-in, below
          "threads": None if _THREADS == "auto" else max(1, int(_THREADS))}


@contextlib.contextmanager
def disabled():
    """Within this block, `in_row_blocks` runs its formula once on the whole arrays (tests
    and benchmarks compare the two)."""
    before, _state["enabled"] = _state["enabled"], False
    try:
        yield
    finally:
        _state["enabled"] = before


def set_threads(n):
    """Evaluate blocks on n threads (an int >= 1), or "auto": tinygen's thread count,
    tg.set_num_threads (OpenBLAS's). The default is 1: see the module's docstring."""
    if n != "auto" and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"blocked.set_threads: n={n!r}: must be an int >= 1 or 'auto'")
    _state["threads"] = None if n == "auto" else n


def threads():
    """How many threads evaluate blocks now (set_threads; TINYGEN_BLOCKED_THREADS)."""
    n = _state["threads"] or get_num_threads()
    return max(1, n if n is not None else os.cpu_count() or 1)


def row_blocks(n_rows, row_bytes, block_bytes):
    """Slices that cut range(n_rows) into blocks of about block_bytes each."""
    step = max(1, block_bytes // max(1, row_bytes))
    return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def in_row_blocks(f, *rows, shared=(), block_bytes=None, flatten=True):
    """f(*[a[s] for a in rows], *shared) for row blocks s of the arrays in `rows` (all with
    the same first axis), on `threads()` threads; returns None once every block is done.

    Arrays with more than two axes are blocked over their leading axes flattened when they
    all are C-contiguous (a view; flatten=False keeps axis 0 and the rest as they are),
    else over axis 0. `shared` arrays (a weight [C], a scalar) go to every call whole."""
    first, block_bytes = rows[0], block_bytes or BLOCK_BYTES
    if not _blockable(rows, block_bytes):
        f(*rows, *shared)
        return
    if flatten and first.ndim > 2 and all(a.flags.c_contiguous and a.ndim == first.ndim
                                          for a in rows):
        rows = [a.reshape(-1, a.shape[-1]) for a in rows]
    n = rows[0].shape[0]
    row_bytes = max(a[0].nbytes for a in rows)
    blocks = row_blocks(n, row_bytes, block_bytes)
    if len(blocks) == 1:
        f(*rows, *shared)
        return
    work = [lambda s=s: f(*[a[s] for a in rows], *shared) for s in blocks]
    # two blocks or more per thread: waking a thread costs ~20 µs, a block's work about that
    _run(work, max(1, min(threads(), len(work) // 2)))


def _blockable(rows, block_bytes):
    if not _state["enabled"] or not all(type(a) is np.ndarray for a in rows):
        return False
    n = rows[0].shape[0] if rows[0].ndim else 0
    if any(a.ndim == 0 or a.shape[0] != n for a in rows):
        raise ValueError(f"in_row_blocks: the row arrays must share their first axis, got "
                         f"shapes {[a.shape for a in rows]}")
    return n > 1 and rows[0].nbytes > block_bytes


def row_sums_in_block(x):
    """x.sum(axis=-1, keepdims=True), for a formula that runs on blocks: einsum's vectorised
    loop, which releases the GIL and calls no BLAS. gemv (backend.row_sums) is faster alone,
    but called from two threads at once OpenBLAS fights over its own thread server: attention
    at shakespeare-char's shapes with its blocks on 2 threads took 1066 ms of CPU time with
    gemv, 609 with einsum (89 on one thread: OpenBLAS's spinning, above, is the rest).
    On CuPy (never blocked) it is backend.row_sums: one gemv, where CuPy's einsum launches
    several kernels."""
    xp = get_array_module(x)
    if xp is not np:
        return row_sums(x)
    return xp.einsum("...c->...", x)[..., None]


def row_dots_in_block(a, b):
    """(a * b).sum(axis=-1, keepdims=True) without the product array: einsum's two-operand
    loop, as row_sums_in_block (attention rows [48, 64, 64]: 45-68 µs against 60-90 for the
    product and its row sums). On CuPy, row_sums of the product."""
    if get_array_module(a) is not np:
        return row_sums(a * b)
    return np.einsum("...c,...c->...", a, b)[..., None]


# ---- matrix products shared out by hand --------------------------------------------------
# OpenBLAS threads one product by cutting it statically among its threads, which then meet
# at a barrier for every block of the inner axis. A conv layer's weight gradient, [A, L] @
# [L, B] with L = pixels x batch (65536 in the residual net), has ~200 such meetings; when
# another job holds one of the two cores each meeting waits for it, and that one product
# took 1.6 s instead of 8 ms at 2 threads (2-core EPYC, load 2.5; the forward's W @ cols
# 22 ms instead of 8). Cut into blocks that one-thread BLAS calls take in turn from this
# module's pool, the product runs at one-thread speed or better whatever the load: 7.9 ms
# (min) for that weight gradient, 7.8 for the forward, against 8.0 and 7.3 on one thread.

# Off by default (TINYGEN_BLOCKED_MATMUL=1 turns it on): on a quiet machine OpenBLAS's own
# threads win -- residual net 1.65x PyTorch without the split, 1.88x with it; DCGAN 0.94x
# against 1.53x (2 Dec, 2-core EPYC, load < 1; docs/cpu_speed.md). Turn it on where other
# jobs share the cores.
MATMUL_MIN_MACS = 1 << 24   # smaller products are not worth waking a thread (~1/4 ms)
MATMUL_BLOCKS_PER_THREAD = 4


def matmul(a, b):
    """a @ b (NumPy's batched matmul rules, a [..., M, K], b [..., K, L]) with the output's
    longer axis, rows of a or columns of b, cut into blocks shared among BLAS's threads
    (tg.set_num_threads), each block a one-thread BLAS call: a @ b within float32 rounding
    (BLAS's kernels may sum a block's edge in another order), the same on every run."""
    if a.ndim >= 2 and b.ndim >= 2 and a.shape[-1] == 1:
        # an outer product: NumPy's matmul leaves BLAS there for a slow loop (backend.mm);
        return a * b      # the broadcast product is the same numbers
    n = _matmul_threads(a, b)
    if n == 1:
        return a @ b
    M, L = a.shape[-2], b.shape[-1]
    out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (M, L),
                   np.result_type(a, b))
    if L >= M:                                      # blocks of columns: out[..., s]
        work = [lambda s=s: np.matmul(a, b[..., s], out=out[..., s])
                for s in _cuts(L, n)]
    else:                                           # blocks of rows: out[..., s, :]
        work = [lambda s=s: np.matmul(a[..., s, :], b, out=out[..., s, :])
                for s in _cuts(M, n)]
    _run_one_thread_blas(work, n)
    return out


def matmul_long_inner(a, b):
    """a @ b for a long inner axis K (a weight gradient: [A, L] @ [L, B], L = pixels x
    batch), K cut into blocks whose products, taken by BLAS's threads as in `matmul`, are
    summed in a fixed order: a @ b within float32 rounding, the same on every run."""
    n = _matmul_threads(a, b)
    if n == 1:
        return a @ b
    cuts = _cuts(a.shape[-1], n)
    parts = [None] * len(cuts)

    def product(j, s):
        parts[j] = a[..., s] @ b[..., s, :]

    _run_one_thread_blas([lambda j=j, s=s: product(j, s) for j, s in enumerate(cuts)], n)
    out = parts[0]
    for p in parts[1:]:
        out += p
    return out


def _matmul_threads(a, b):
    """How many threads `matmul` shares a product among: BLAS's, for a NumPy product of
    MATMUL_MIN_MACS or more; 1 (a plain a @ b, threaded by OpenBLAS itself) otherwise: CuPy,
    `disabled()`, and TINYGEN_BLOCKED_MATMUL unset (the default) included."""
    if not (_state["enabled"] and _state["matmul"]) or type(a) is not np.ndarray or (
            type(b) is not np.ndarray):
        return 1
    if a.ndim < 2 or b.ndim < 2 or a.size == 0 or b.size == 0:
        return 1
    n = get_num_threads() or 1
    if n == 1:
        return 1
    M, K, L = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = max(a.size // (M * K), b.size // (K * L))     # broadcast batch size
    return n if batch * M * K * L >= MATMUL_MIN_MACS else 1


def _cuts(n, threads):
    step = -(-n // (threads * MATMUL_BLOCKS_PER_THREAD))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _run_one_thread_blas(work, n_threads):
    """Run `work` on n_threads threads with OpenBLAS on one thread meanwhile (so each block
    is one plain BLAS call in the thread that takes it), then give OpenBLAS its threads back."""
    set_num_threads(1)
    try:
        _run(work, n_threads)
    finally:
        set_num_threads(n_threads)


# ---- the thread pool -----------------------------------------------------------------------
# Persistent threads (starting one costs ~50 µs, as much as a small op): each waits on its
# own queue for a batch of work. A batch is a list of zero-argument callables and a shared
# counter; the caller's thread and n - 1 workers each take the next undone item until none
# is left, so a slow thread (the machine is shared) takes fewer blocks instead of holding the
# others up.

class _Batch:
    def __init__(self, work, n_helpers):
        self.work, self.next = work, itertools.count()  # next(): atomic under the GIL
        self.left, self.lock, self.done = n_helpers, threading.Lock(), threading.Event()
        self.error = None
        if n_helpers == 0:
            self.done.set()

    def drain(self):
        """Run undone items until none is left; the first error stops the rest."""
        n = len(self.work)
        for i in self.next:
            if i >= n:
                return
            if self.error is None:
                try:
                    self.work[i]()
                except BaseException as e:  # noqa: BLE001  re-raised in the caller's thread
                    self.error = e

    def helper_done(self):
        with self.lock:
            self.left -= 1
            if self.left == 0:
                self.done.set()


class _Pool:
    def __init__(self):
        self.queues = []

    def grow(self, n_helpers):
        while len(self.queues) < n_helpers:
            q = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(q,), daemon=True,
                             name=f"tinygen-blocked-{len(self.queues)}").start()
            self.queues.append(q)

    @staticmethod
    def _serve(q):
        while True:
            batch = q.get()
            batch.drain()
            batch.helper_done()


_pool_lock = threading.Lock()


def _forget_pool_after_fork():
    """A forked child has the pool's queues but not its threads: start afresh there."""
    global _pool_lock
    _state["pool"], _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _run(work, n_threads):
    """Run every callable of `work` on n_threads threads (this one included)."""
    helpers = n_threads - 1
    if helpers <= 0 or threading.current_thread().name.startswith("tinygen-blocked"):
        for w in work:
            w()
        return
    with _pool_lock:
        pool = _state["pool"] = _state["pool"] or _Pool()
        pool.grow(helpers)
    batch = _Batch(work, helpers)
    for q in pool.queues[:helpers]:
        q.put(batch)
    batch.drain()
    batch.done.wait()
    if batch.error is not None:
        raise batch.error
