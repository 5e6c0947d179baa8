"""Device arrays between GPUs: NCCL through CuPy's binding (`cupy.cuda.nccl`).

The NCCL communicator needs one id shared by all ranks: rank 0 makes it and broadcasts it
over MPI (the recipe of ChainerMN and of CuPy's own docs). Each process drives one GPU
(init_process_group picked GPU local_rank). Calls are queued on the current stream, so
they are ordered with the kernels before and after them and the host does not wait.

Without NCCL (a CuPy built without it, or the CPU test suite's emulator) device arrays
take StagedTransport: host copies over MPI.

Not verified: NCCLTransport has never run (no GPU machine yet; docs/gpu.md, "What has run
where" in docs/distributed.md). The test suite covers the logic around it through the
staged path; the calls below follow CuPy's documented NcclCommunicator signatures.
"""

import numpy as np

from tinygen.backend import cp, cuda_available


def _nccl():
    """CuPy's NCCL module, or None. (CuPy itself is imported by tinygen.backend only.)"""
    if cp is None or not cuda_available():
        return None
    try:
        from cupy.cuda import nccl
    except ImportError:
        return None
    return nccl if nccl.available else None


def device_transport(g):
    if g.nccl is None:
        nccl = _nccl()
        if nccl is None:
            from tinygen.distributed.collectives import StagedTransport

            g.nccl = StagedTransport(g.comm)
        else:
            g.nccl = NCCLTransport(g.comm, nccl)
    return g.nccl


class NCCLTransport:
    """Device arrays over NCCL, one communicator per process group. Unverified: it has not
    run on a GPU yet (see the module docstring)."""

    def __init__(self, comm, nccl):
        uid = nccl.get_unique_id() if comm.Get_rank() == 0 else None
        uid = comm.bcast(uid, root=0)  # a small tuple of bytes: pickled bcast is fine
        self.nccl = nccl
        self.comm = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())
        self.types = {np.dtype(np.float32): nccl.NCCL_FLOAT32,
                      np.dtype(np.float64): nccl.NCCL_FLOAT64,
                      np.dtype(np.float16): nccl.NCCL_FLOAT16,
                      np.dtype(np.int32): nccl.NCCL_INT32,
                      np.dtype(np.int64): nccl.NCCL_INT64}
        self.ops = {"sum": nccl.NCCL_SUM, "avg": nccl.NCCL_SUM, "max": nccl.NCCL_MAX,
                    "min": nccl.NCCL_MIN}

    def _type(self, a):
        if a.dtype not in self.types:
            raise TypeError(f"tinygen.distributed: NCCL carries {sorted(map(str, self.types))}"
                            f", not {a.dtype}")
        return self.types[a.dtype]

    @staticmethod
    def _stream():
        return cp.cuda.get_current_stream().ptr

    def broadcast(self, a, src):
        self.comm.bcast(a.data.ptr, a.size, self._type(a), src, self._stream())

    def all_reduce(self, a, op):
        self.comm.allReduce(a.data.ptr, a.data.ptr, a.size, self._type(a), self.ops[op],
                            self._stream())

    def iall_reduce(self, a, op):
        self.all_reduce(a, op)  # no request: queued on the stream, the host need not wait

    def reduce_scatter(self, out, a, op):
        self.comm.reduceScatter(a.data.ptr, out.data.ptr, out.size, self._type(a),
                                self.ops[op], self._stream())

    def all_gather(self, out, a):
        self.comm.allGather(a.data.ptr, out.data.ptr, a.size, self._type(a), self._stream())
