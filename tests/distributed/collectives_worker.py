"""Worker for tests/test_distributed.py: every collective on Tensors and arrays, over MPI
and over the host-staged device path, against the answers computed by hand; then a call
with shapes that differ across ranks, which must raise on every rank. Prints "ok <rank>"."""

import sys

import numpy as np

import tinygen as tg
import tinygen.distributed as dist
from tinygen.distributed.collectives import MPITransport, StagedTransport
from tinygen.distributed.process_group import group

dist.init_process_group()
r, N = dist.get_rank(), dist.get_world_size()
assert N == 2, N
assert dist.get_local_rank() == r  # one machine: local rank is the rank

# all_reduce on a Tensor (in place), sum and avg, and on an array with max
t = tg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) + 10 * r)
dist.all_reduce(t)
np.testing.assert_allclose(t.numpy(), 2 * np.arange(6).reshape(2, 3) + 10)
a = np.full(3, float(r), np.float64)
dist.all_reduce(a, dist.ReduceOp.AVG)
np.testing.assert_allclose(a, 0.5)
m = np.array([r, -r], np.int64)
dist.all_reduce(m, dist.ReduceOp.MAX)
assert m.tolist() == [1, 0]

# broadcast from rank 1
b = tg.tensor(np.full((2, 2), float(r), np.float32))
dist.broadcast(b, src=1)
assert (b.numpy() == 1).all()

# reduce_scatter: input [N * 2] -> rank r gets the summed block r; list form too
out = np.empty(2, np.float32)
dist.reduce_scatter_tensor(out, np.arange(4, dtype=np.float32) * (r + 1))
np.testing.assert_allclose(out, 3 * np.arange(4)[2 * r:2 * r + 2])
out2 = tg.zeros(3)
dist.reduce_scatter(out2, [tg.ones(3) * (k + 1) for k in range(N)], dist.ReduceOp.AVG)
np.testing.assert_allclose(out2.numpy(), r + 1)

# all_gather: both forms
g = np.empty((N, 3), np.float32)
dist.all_gather_into_tensor(g, np.full(3, float(r), np.float32))
np.testing.assert_allclose(g, [[0] * 3, [1] * 3])
parts = [tg.zeros(2), tg.zeros(2)]
dist.all_gather(parts, tg.tensor(np.array([r, r + 5], np.float32)))
assert [p.numpy().tolist() for p in parts] == [[0, 5], [1, 6]]

# the device-array path through host copies gives what MPI gives
comm = group().comm
for transport in (MPITransport(comm), StagedTransport(comm)):
    x = np.arange(4, dtype=np.float32) + r
    transport.all_reduce(x, "sum")
    np.testing.assert_allclose(x, 2 * np.arange(4) + 1)
    y = np.full(2, float(r), np.float32)
    transport.broadcast(y, 0)
    assert (y == 0).all()
    z = np.empty(2, np.float32)
    transport.reduce_scatter(z, np.arange(4, dtype=np.float32), "sum")
    np.testing.assert_allclose(z, 2 * np.arange(4)[2 * r:2 * r + 2])
    w = np.empty(4, np.float32)
    transport.all_gather(w, np.full(2, float(r), np.float32))
    np.testing.assert_allclose(w, [0, 0, 1, 1])
    req = transport.iall_reduce(x, "max")
    if req is not None:
        req.Wait()
dist.barrier()

# different shapes on the two ranks: a clear error on both, not a hang
try:
    dist.all_reduce(np.zeros(3 + r, np.float32))
except ValueError as e:
    assert "rank 0: shape (3,)" in str(e) and "rank 1: shape (4,)" in str(e), e
else:
    sys.exit("all_reduce accepted different shapes")
sys.stdout.write(f"ok {r}\n")  # one write: the two ranks share the pipe
sys.stdout.flush()
