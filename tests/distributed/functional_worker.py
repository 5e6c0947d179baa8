"""Worker for tests/test_distributed_demos.py, under mpiexec -n 2: SyncBatchNorm,
all_gather_rows and DDP(sync_in_backward=True) give, on every rank, exactly the gradients
one process computes on the whole batch — a loss that couples all rows (as CLIP's), a batch
that splits unevenly (7 rows: 3 + 4), gradients compared directly (no optimizer whose
scale invariance could hide a factor N). Prints "ok <rank>"."""

import sys

import numpy as np

import tinygen as tg
import tinygen.distributed as dist
from tinygen import nn

dist.init_process_group()
r = dist.get_rank()
tg.manual_seed(0)


def net():
    return nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))


ref, par = net(), net()
par.load_state_dict(ref.state_dict())
par = dist.SyncBatchNorm.convert_sync_batchnorm(par)
ddp = dist.DistributedDataParallel(par, sync_in_backward=True)
rng = np.random.default_rng(1)
for step in range(2):
    x = rng.standard_normal((7, 3)).astype(np.float32)          # the global batch
    e = ref(tg.tensor(x))                                       # one process: all 7 rows
    ((e @ e.T) ** 2).mean().backward()
    mine, _ = dist.local_share(x)                               # rank 0: 3 rows, rank 1: 4
    e = dist.all_gather_rows(ddp(tg.tensor(mine)))              # [7, 4] on every rank
    ((e @ e.T) ** 2).mean().backward()                          # averaged when it returns
    for (name, a), b in zip(ref.named_parameters(), par.parameters()):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=f"step {step} {name}")
        a.grad = b.grad = None
np.testing.assert_allclose(par[1].running_var.numpy(), ref[1].running_var.numpy(), rtol=1e-5)
assert mine.shape[0] == 3 + r

# plain BatchNorm under DDP: rank 0's running statistics reach every rank before each
# training forward (PyTorch's broadcast_buffers), then each rank's own batch updates them
bn = nn.BatchNorm1d(2)
bn_ddp = dist.DistributedDataParallel(bn)
bn.running_mean.data[...] = 5.0 * (r + 1)      # rank 0: 5, rank 1: 10
x = np.full((4, 2), float(r), np.float32)      # batch mean r
bn_ddp(tg.tensor(x)).sum().backward()
np.testing.assert_allclose(bn.running_mean.numpy(), 0.9 * 5.0 + 0.1 * r, rtol=1e-6)
sys.stdout.write(f"ok {r}\n")
