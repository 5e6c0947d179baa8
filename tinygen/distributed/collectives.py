"""Collectives on Tensors and arrays: broadcast, all_reduce, reduce_scatter, all_gather.

Names and signatures follow torch.distributed; each works in place on a Tensor's array (or
on a bare NumPy/CuPy array). Host arrays travel over MPI; device arrays over NCCL, whose
communicator is made on first use from a unique id that rank 0 broadcasts over MPI. Where
CuPy has no NCCL (or runs on the test suite's emulator), device arrays are staged through
host copies over MPI — the same logic, slower.

Every public collective first compares the shapes and dtypes of all ranks (one tiny
allgather) and raises the same clear error on every rank if they differ — a mismatch in
MPI is otherwise a hang or a silent wrong answer. DDP and ZeRO build their buffers the
same on every rank and call the `check=False` fast path.
"""

import numpy as np

from tinygen.backend import get_array_module, to_device, to_numpy
from tinygen.distributed.process_group import group
from tinygen.tensor import Tensor


class ReduceOp:
    SUM, AVG, MAX, MIN = "sum", "avg", "max", "min"


def _array(x, op):
    if isinstance(x, Tensor):
        return x.data
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x
    raise TypeError(f"tinygen.distributed.{op}: expected a Tensor or an array, "
                    f"got {type(x).__name__}")


def _check_same(g, op, a):
    """Raise on every rank if this rank's array differs in shape/dtype from another's."""
    mine = (tuple(a.shape), str(a.dtype), "cpu" if get_array_module(a) is np else "cuda")
    everyone = g.comm.allgather(mine)
    if any(m != everyone[0] for m in everyone):
        listed = "; ".join(f"rank {r}: shape {s} {d} on {dev}"
                           for r, (s, d, dev) in enumerate(everyone))
        raise ValueError(f"tinygen.distributed.{op}: the ranks passed different arrays "
                         f"({listed}); every rank must pass the same shape, dtype and device")


def _check_reduce_op(op, name, a):
    if op not in (ReduceOp.SUM, ReduceOp.AVG, ReduceOp.MAX, ReduceOp.MIN):
        raise ValueError(f"tinygen.distributed.{name}: op must be one of sum, avg, max, min, "
                         f"got {op!r}")
    if op == ReduceOp.AVG and not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"tinygen.distributed.{name}: op avg needs a floating array, "
                        f"got {a.dtype}")


def _transport(g, a):
    """The way this array travels: MPI for host arrays, NCCL or host staging for device ones."""
    if get_array_module(a) is np:
        return MPITransport(g.comm)
    from tinygen.distributed.nccl import device_transport

    return device_transport(g)


class MPITransport:
    """Host arrays over MPI (mpi4py's buffer interface: no pickling, no copies)."""

    def __init__(self, comm):
        from mpi4py import MPI

        self.comm, self.MPI = comm, MPI
        self.ops = {"sum": MPI.SUM, "avg": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    def broadcast(self, a, src):
        self.comm.Bcast(a, root=src)

    def all_reduce(self, a, op):
        self.comm.Allreduce(self.MPI.IN_PLACE, a, op=self.ops[op])

    def iall_reduce(self, a, op):
        """Start an all-reduce and return its request (wait() finishes it)."""
        return self.comm.Iallreduce(self.MPI.IN_PLACE, a, op=self.ops[op])

    def reduce_scatter(self, out, a, op):  # a: [N * n] -> out: [n], this rank's block
        self.comm.Reduce_scatter_block(a, out, op=self.ops[op])

    def all_gather(self, out, a):  # a: [n] -> out: [N * n], rank r's block at r * n
        self.comm.Allgather(a, out)


class StagedTransport:
    """Device arrays through host copies over MPI: device -> host, MPI, host -> device.
    What a CuPy without NCCL uses; its logic is what the CPU-only test suite covers."""

    def __init__(self, comm):
        self.mpi = MPITransport(comm)

    @staticmethod
    def _back(dst, host):
        dst[...] = to_device(host, "cuda" if get_array_module(dst) is not np else "cpu")

    def broadcast(self, a, src):
        host = np.ascontiguousarray(to_numpy(a))
        self.mpi.broadcast(host, src)
        self._back(a, host)

    def all_reduce(self, a, op):
        host = np.ascontiguousarray(to_numpy(a))
        self.mpi.all_reduce(host, op)
        self._back(a, host)

    def iall_reduce(self, a, op):
        self.all_reduce(a, op)  # finished already: no request to wait on

    def reduce_scatter(self, out, a, op):
        host_out = np.empty(out.shape, out.dtype)
        self.mpi.reduce_scatter(host_out, np.ascontiguousarray(to_numpy(a)), op)
        self._back(out, host_out)

    def all_gather(self, out, a):
        host_out = np.empty(out.shape, out.dtype)
        self.mpi.all_gather(host_out, np.ascontiguousarray(to_numpy(a)))
        self._back(out, host_out)


def _contiguous(a, op):
    if not a.flags.c_contiguous:
        raise ValueError(f"tinygen.distributed.{op}: the array must be C-contiguous "
                         f"(got strides {a.strides}); pass .contiguous() / a copy")
    return a


def broadcast(tensor, src=0, check=True):
    """Copy rank `src`'s tensor into every rank's tensor, in place."""
    g, a = group(), _contiguous(_array(tensor, "broadcast"), "broadcast")
    if not 0 <= src < g.world_size:
        raise ValueError(f"tinygen.distributed.broadcast: src {src} is not a rank of a "
                         f"group of {g.world_size}")
    if g.comm is None:
        return tensor
    if check:
        _check_same(g, "broadcast", a)
    _transport(g, a).broadcast(a, src)
    return tensor


def all_reduce(tensor, op=ReduceOp.SUM, check=True):
    """Reduce the tensor over all ranks (sum, avg, max, min); every rank gets the result."""
    g, a = group(), _contiguous(_array(tensor, "all_reduce"), "all_reduce")
    _check_reduce_op(op, "all_reduce", a)
    if g.comm is None:
        return tensor
    if check:
        _check_same(g, "all_reduce", a)
    _transport(g, a).all_reduce(a, op)
    if op == ReduceOp.AVG:
        a *= 1.0 / g.world_size
    return tensor


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, check=True):
    """input [N * n, ...] reduced over ranks; rank r keeps block r in output [n, ...]."""
    g = group()
    out, a = _array(output, "reduce_scatter"), _array(input, "reduce_scatter")
    _contiguous(out, "reduce_scatter"), _contiguous(a, "reduce_scatter")
    _check_reduce_op(op, "reduce_scatter", a)
    if a.size != out.size * g.world_size or a.dtype != out.dtype:
        raise ValueError(f"tinygen.distributed.reduce_scatter: input {tuple(a.shape)} "
                         f"{a.dtype} must hold world_size={g.world_size} blocks of output "
                         f"{tuple(out.shape)} {out.dtype}")
    if g.comm is None:
        out[...] = a.reshape(out.shape)
        return output
    if check:
        _check_same(g, "reduce_scatter", a)
    _transport(g, a).reduce_scatter(out, a, op)
    if op == ReduceOp.AVG:
        out *= 1.0 / g.world_size
    return output


def reduce_scatter(output, input_list, op=ReduceOp.SUM, check=True):
    """torch.distributed's list form: input_list[r] reduced over ranks lands on rank r."""
    xp = get_array_module(_array(output, "reduce_scatter"))
    flat = xp.concatenate([_array(t, "reduce_scatter").reshape(-1) for t in input_list])
    return reduce_scatter_tensor(output, flat, op, check)


def all_gather_into_tensor(output, input, check=True):
    """input [n, ...] from every rank, concatenated in rank order into output [N * n, ...]."""
    g = group()
    out, a = _array(output, "all_gather"), _array(input, "all_gather")
    _contiguous(out, "all_gather"), _contiguous(a, "all_gather")
    if out.size != a.size * g.world_size or a.dtype != out.dtype:
        raise ValueError(f"tinygen.distributed.all_gather: output {tuple(out.shape)} "
                         f"{out.dtype} must hold world_size={g.world_size} copies of input "
                         f"{tuple(a.shape)} {a.dtype}")
    if g.comm is None:
        out.reshape(a.shape)[...] = a
        return output
    if check:
        _check_same(g, "all_gather", a)
    _transport(g, a).all_gather(out.reshape(-1), a.reshape(-1))
    return output


def all_gather(tensor_list, tensor, check=True):
    """torch.distributed's list form: tensor_list[r] receives rank r's tensor."""
    g, a = group(), _array(tensor, "all_gather")
    if len(tensor_list) != g.world_size:
        raise ValueError(f"tinygen.distributed.all_gather: tensor_list has "
                         f"{len(tensor_list)} entries for a group of {g.world_size}")
    xp = get_array_module(a)
    out = xp.empty((g.world_size, *a.shape), a.dtype)
    all_gather_into_tensor(out, xp.ascontiguousarray(a), check)
    for r, t in enumerate(tensor_list):
        _array(t, "all_gather")[...] = out[r]
    return tensor_list
