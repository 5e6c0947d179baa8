"""tinygen.distributed: data-parallel training over processes and machines on MPI (mpi4py),
NCCL for GPU arrays; names after torch.distributed. See docs/distributed.md.

    mpiexec -n 2 python demos/gpt.py --batch_size 64      # 2 ranks × 32 rows
"""

from tinygen.distributed.checkpoint import save_checkpoint
from tinygen.distributed.collectives import (
    ReduceOp,
    all_gather,
    all_gather_into_tensor,
    all_reduce,
    broadcast,
    reduce_scatter,
    reduce_scatter_tensor,
)
from tinygen.distributed.data import local_batch, local_share
from tinygen.distributed.ddp import DistributedDataParallel
from tinygen.distributed.functional import all_gather_rows
from tinygen.distributed.process_group import (
    barrier,
    destroy_process_group,
    get_local_rank,
    get_rank,
    get_world_size,
    init_process_group,
    is_initialized,
    is_main_process,
    launcher_env,
    launcher_world_size,
)
from tinygen.distributed.sync_batchnorm import SyncBatchNorm
from tinygen.distributed.zero import ZeroRedundancyOptimizer

__all__ = [
    "DistributedDataParallel", "ReduceOp", "SyncBatchNorm", "ZeroRedundancyOptimizer",
    "all_gather", "all_gather_into_tensor", "all_gather_rows", "all_reduce", "barrier",
    "broadcast", "destroy_process_group", "get_local_rank", "get_rank", "get_world_size",
    "init_process_group", "is_initialized", "is_main_process", "launcher_env",
    "launcher_world_size", "local_batch", "local_share", "reduce_scatter", "reduce_scatter_tensor",
    "save_checkpoint",
]
