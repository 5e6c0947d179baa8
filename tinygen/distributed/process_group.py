"""The process group: who am I (rank), how many are we (world size), and the transports.

`init_process_group()` reads what the launcher set up — `mpiexec`/`mpirun` (MPICH's
PMI_*, Open MPI's OMPI_COMM_WORLD_*) or Slurm's `srun` (SLURM_PROCID, SLURM_NTASKS,
SLURM_LOCALID) — and joins MPI through mpi4py, the engine ChainerMN and llm.c scale out on;
MPI's rank and size must agree with the launcher's, or it says so instead of training alone. A process started without a launcher
is a group of one: it needs no MPI installed, and every collective is the identity.

Rank failures never hang the job: once the group is up, an exception that escapes on any
rank prints the failed rank and calls MPI_Abort, which the launcher turns into the end of
every rank (what mpi4py's `python -m mpi4py` does too).
"""

import os
import sys
import traceback

from tinygen.backend import cp, cuda_available

# Where launchers put the world size, this process's rank and its rank on its machine, in
# the order they are trusted: an mpiexec started inside a Slurm allocation inherits the
# allocation's SLURM_* (SLURM_PROCID is 0 in the batch script), so MPI's own come first.
_LAUNCHER_ENV = (
    ("mpiexec (Open MPI)", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
     "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("mpiexec (MPICH / Intel MPI Hydra)", "PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"),
    ("srun (Slurm)", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_LOCALID"),
    ("srun (Slurm)", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID"),
)


def launcher_env(environ=None):
    """What the launcher announced: {launcher, world_size, rank, local_rank} (rank and
    local_rank None where it did not say), or None when no launcher started this process.
    srun's SLURM_STEP_NUM_TASKS (the tasks of this job step) wins over SLURM_NTASKS (the
    allocation's, also set in an sbatch script that started no step)."""
    environ = os.environ if environ is None else environ

    def number(key):
        value = environ.get(key, "").strip()
        return int(value) if value.isdigit() else None

    for launcher, size_key, rank_key, local_key in _LAUNCHER_ENV:
        size = number(size_key)
        if size is not None and size >= 1:
            return {"launcher": launcher, "world_size": size, "rank": number(rank_key),
                    "local_rank": number(local_key), "keys": (size_key, rank_key, local_key)}
    return None


def launcher_world_size(environ=None):
    """The world size the launcher announced (1 when started without one)."""
    env = launcher_env(environ)
    return 1 if env is None else env["world_size"]


class ProcessGroup:
    """rank, world size, local rank (rank among the processes on this machine) and the
    MPI communicator (None for a group of one)."""

    def __init__(self, comm, rank, world_size, local_rank):
        self.comm, self.rank, self.world_size, self.local_rank = comm, rank, world_size, local_rank
        self.nccl = None  # a NCCL communicator, made the first time device arrays meet it

    def __repr__(self):
        return (f"ProcessGroup(rank={self.rank}, world_size={self.world_size}, "
                f"local_rank={self.local_rank}, backend={'mpi' if self.comm else 'self'})")


_group = None


def init_process_group(backend="mpi"):
    """Join the group the launcher started (idempotent). On a machine with GPUs each
    process takes GPU `local_rank % count`, one GPU per process as NCCL expects."""
    global _group
    if _group is not None:
        return _group
    if backend != "mpi":
        raise ValueError(f"init_process_group: backend must be 'mpi' (NCCL carries device "
                         f"arrays inside it), got {backend!r}")
    env = launcher_env()
    if env is None or env["world_size"] == 1:
        _group = ProcessGroup(None, 0, 1, 0)  # no launcher, no MPI: a group of one
    else:
        _group = _join_mpi(env)
    if cuda_available():
        cp.cuda.Device(_group.local_rank % cp.cuda.runtime.getDeviceCount()).use()
    return _group


def _join_mpi(env):
    """The MPI world, checked against what the launcher announced: an srun whose MPI was
    not built for Slurm (or a plain `python` inside an sbatch script) starts processes that
    each see an MPI world of one — they would train alone, silently, N times over."""
    size = env["world_size"]
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError(
            f"init_process_group: {env['launcher']} started {size} processes but mpi4py is "
            f"not installed (pip install tinygen[distributed]): {e}") from None
    comm = MPI.COMM_WORLD
    size_key, rank_key, _ = env["keys"]
    if comm.Get_size() != size or env["rank"] not in (None, comm.Get_rank()):
        hint = (" Under Slurm start the tasks with srun and an MPI built for it (srun "
                "--mpi=pmix, `srun --mpi=list` shows the choices); a plain `python` in an "
                "sbatch script is one process." if env["launcher"].startswith("srun") else "")
        raise RuntimeError(
            f"init_process_group: {env['launcher']} announced rank {env['rank']} of {size} "
            f"({rank_key}, {size_key}) but MPI sees rank {comm.Get_rank()} of "
            f"{comm.Get_size()}: mpi4py is not running under that launcher's MPI.{hint}")
    if env["local_rank"] is not None:
        local_rank = env["local_rank"]
    else:  # the processes sharing this machine's memory: their order is the local rank
        local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
        local_rank = local.Get_rank()
        local.Free()
    group = ProcessGroup(comm, comm.Get_rank(), comm.Get_size(), local_rank)
    if group.world_size > 1:
        _install_abort_on_error(comm)
    return group


def _install_abort_on_error(comm):
    """An uncaught exception on one rank ends every rank, naming the rank that failed."""
    def abort(kind, value, tb):
        rank, size = comm.Get_rank(), comm.Get_size()
        sys.stderr.write(f"tinygen.distributed: rank {rank} of {size} failed with "
                         f"{kind.__name__}: {value}; aborting all {size} ranks\n")
        traceback.print_exception(kind, value, tb, file=sys.stderr)
        sys.stderr.flush()
        comm.Abort(1)

    sys.excepthook = abort


def is_initialized():
    return _group is not None


def group():
    """The current ProcessGroup; a clear error if init_process_group() has not run."""
    if _group is None:
        raise RuntimeError("tinygen.distributed: the process group is not initialised; "
                           "call tinygen.distributed.init_process_group() first")
    return _group


def get_rank():
    return group().rank


def get_world_size():
    return group().world_size


def get_local_rank():
    return group().local_rank


def is_main_process():
    """True on rank 0 (and in a group of one): the rank that logs, samples and saves."""
    return group().rank == 0


def barrier():
    g = group()
    if g.comm is not None:
        g.comm.Barrier()


def destroy_process_group():
    """Forget the group (MPI itself finalises at exit, as mpi4py arranges)."""
    global _group
    _group = None
