"""The safetensors file format, the bytes: writing a header and tensors, reading and checking
them, and memory-mapping a file (Hugging Face's safetensors, "Format"):

    8 bytes   N, the length of the header, an unsigned little-endian integer
    N bytes   the header: UTF-8 JSON, padded with spaces to a multiple of 8 bytes
              {"__metadata__": {str: str},                          <- optional
               name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
    the rest  the byte buffer: each tensor's raw little-endian C-order bytes, back to back,
              with no gaps; `data_offsets` count from the start of this buffer.

serialization.py builds on this: what a state_dict or a nested training checkpoint becomes.
Reading only parses JSON and copies bytes -- no pickle, no eval -- and every header field is
checked before it is used.
"""

import contextlib
import json
import math
import mmap
import os
import reprlib
import struct
import uuid

import numpy as np

from tinygen.backend import to_numpy

# safetensors dtype names and the NumPy dtypes they hold; the bytes on disk are little-endian
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
# looked up by (kind, itemsize), which does not depend on the array's byte order
DTYPE_NAMES = {(dtype.kind, dtype.itemsize): name for name, dtype in DTYPES.items()}

MAX_HEADER_BYTES = 100_000_000  # the official reader's limit (MAX_HEADER_SIZE, 100 MB)


class CheckpointError(ValueError):
    """A file that is not a valid safetensors file or tinygen checkpoint."""



def build_header(leaves, metadata):
    """The padded header bytes and the order in which the tensors' bytes follow it."""
    # Widest dtypes first, as the official writer does: every tensor then starts at a
    # multiple of its itemsize, so `load` can use it in place without an aligning copy.
    order = sorted(leaves, key=lambda name: -leaves[name].dtype.itemsize)
    offsets, end = {}, 0
    for name in order:
        nbytes = leaves[name].size * leaves[name].dtype.itemsize
        offsets[name], end = [end, end + nbytes], end + nbytes

    header = {} if metadata is None else {"__metadata__": metadata}
    for name, array in leaves.items():  # the header keeps the caller's order
        dtype_name = DTYPE_NAMES.get((array.dtype.kind, array.dtype.itemsize))
        if dtype_name is None:
            raise TypeError(f"save: tensor {name!r} has dtype {array.dtype}, which safetensors "
                            f"cannot store (supported: {', '.join(DTYPES)})")
        header[name] = {"dtype": dtype_name, "shape": [int(n) for n in array.shape],
                        "data_offsets": offsets[name]}
    header = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return header + b" " * (-len(header) % 8), order


def write_atomic(path, header, arrays):
    """Write to a temporary file beside `path`, then rename it over `path`.

    A rename within one directory is atomic (POSIX rename(2)), so a crash or an error
    leaves either the old checkpoint or the new one, never half of one.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(struct.pack("<Q", len(header)))
            f.write(header)
            for array in arrays:  # one at a time: GPU tensors are never all in host memory
                array = to_numpy(array)
                array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
                f.write(array.data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    # make the rename itself durable; not possible on Windows or on some file systems
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)



def read_file(path):
    """The checked header -- metadata and name -> (dtype, shape, begin, end) -- and the
    byte buffer that follows it."""
    with open(path, "rb") as f:
        size, n, metadata, entries = read_header(path, f)
        buffer = bytearray(size - 8 - n)  # one read; the tensors are views into it
        if f.readinto(buffer) != len(buffer):
            raise error(path, "the file became shorter while it was being read")
    return metadata, entries, buffer


def read_header(path, f):
    """(file size, header length, metadata, checked entries) of the open file `f`."""
    size = os.fstat(f.fileno()).st_size
    if size < 8:
        raise error(path, f"the file is {size} bytes long, too short to hold even the "
                     "8-byte header length")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > MAX_HEADER_BYTES:
        raise error(path, f"the header length {n} is over the {MAX_HEADER_BYTES}-byte "
                     "limit (is this a safetensors file?)")
    if 8 + n > size:
        raise error(path, f"the header claims to be {n} bytes long, but the file is only "
                     f"{size} bytes")
    return (size, n) + parse_header(path, f.read(n), size - 8 - n)


def populated_empty(count, dtype=np.float32):
    """A zeroed array [count] whose memory the OS maps in one system call (an anonymous mmap
    with MAP_POPULATE, Linux) instead of one page fault per 4 KB page at its first write.
    Writing 0.5 GB into fresh memory otherwise costs ~120,000 faults, which on a virtual
    machine took 2 s -- more than copying the bytes; populated, 0.4-0.6 s (benchmarks/gpt2.py).
    Without MAP_POPULATE (macOS, Windows), np.empty."""
    dtype = np.dtype(dtype)
    nbytes = count * dtype.itemsize
    if not hasattr(mmap, "MAP_POPULATE") or nbytes == 0:
        return np.empty(count, dtype)
    memory = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
    return np.frombuffer(memory, dtype, count)  # the array keeps the mapping alive


class MappedFile:
    """A safetensors file memory-mapped read-only, its header checked as `load` checks it.

    `array(name)` is a read-only view (no bytes are read until used); `copy_into(name, out)`
    copies a tensor into `out` in slabs of SLAB_BYTES and hands each slab's pages back to
    the OS once copied (madvise MADV_DONTNEED), so copying a whole file into a model holds
    at most one slab of the file in memory besides the model: memory-frugal loading.

    copy_on_write=True maps the file privately (MAP_PRIVATE) instead: `array` views are then
    writable, a write copies its page into the process and never reaches the file, and pages
    never written stay the page cache's own, shared. Such views outlive `close` only if the
    mapping is left open for them (it is unmapped when the last view goes); the file must then
    not be truncated or rewritten in place meanwhile (an atomic replace, as `save` does, is
    safe): reading a page cut off from the file raises SIGBUS (as torch.load(mmap=True)).
    """

    SLAB_BYTES = 1 << 24

    def __init__(self, path, copy_on_write=False):
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            _, n, self.metadata, self.entries = read_header(self.path, f)
            access = mmap.ACCESS_COPY if copy_on_write else mmap.ACCESS_READ
            self._map = mmap.mmap(f.fileno(), 0, access=access)
        self._start = 8 + n  # where the byte buffer begins in the file
        self.buffer = memoryview(self._map)[self._start:]

    def array(self, name):
        if name not in self.entries:
            raise KeyError(f"{self.path!r} holds no tensor {name!r}")
        return tensor_array(self.path, name, self.buffer, *self.entries[name])

    def copy_into(self, name, out):
        """out[...] = tensor `name`, with numpy's casting; `out` may be any strided view of
        the tensor's shape (a transposed view copies with a transpose)."""
        _, shape, begin, _ = self.entries[name]
        if tuple(out.shape) != shape:
            raise ValueError(f"{self.path!r}: tensor {name!r} has shape {list(shape)}, but "
                             f"the destination has {list(out.shape)}")
        if not shape or math.prod(shape) == 0:
            out[...] = self.array(name)
            return out
        source = self.array(name)
        row_bytes = max(1, source[0].nbytes)
        step = max(1, self.SLAB_BYTES // row_bytes)
        for i in range(0, shape[0], step):
            out[i:i + step] = source[i:i + step]
            self._release(begin + i * row_bytes, begin + min(i + step, shape[0]) * row_bytes)
        return out

    def _release(self, begin, end):
        if hasattr(self._map, "madvise") and hasattr(mmap, "MADV_DONTNEED"):  # POSIX only
            first = (self._start + begin) // mmap.PAGESIZE * mmap.PAGESIZE
            self._map.madvise(mmap.MADV_DONTNEED, first, self._start + end - first)

    def close(self):
        """Unmap the file; views from `array` must be gone by then (mmap refuses else)."""
        if self._map is not None:
            self.buffer.release()
            self._map.close()
            self._map = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()



def parse_header(path, raw, buffer_size):
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError
        raise error(path, f"the header is not valid UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise error(path, f"the header must be a JSON object, got {type(header).__name__}")

    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
            isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise error(path, "__metadata__ must be an object of string -> string")
    checked = {name: check_entry(path, name, info, buffer_size) for name, info in header.items()}

    # The tensors must tile the buffer exactly: no overlaps (two tensors sharing bytes),
    # no gaps and nothing after the last one -- the official format's rule.
    position, previous = 0, None
    for begin, end, name in sorted((info[2], info[3], name) for name, info in checked.items()):
        if begin < position:
            raise error(path, f"tensor {name!r} (bytes {begin}..{end}) overlaps tensor "
                         f"{previous!r}, which ends at byte {position}")
        if begin > position:
            raise error(path, f"bytes {position}..{begin} of the data belong to no tensor")
        position, previous = end, name
    if position != buffer_size:
        raise error(path, f"{buffer_size - position} bytes after the last tensor belong to "
                     "no tensor")
    return metadata or {}, checked


def check_entry(path, name, info, buffer_size):
    """Validate one header entry; return (dtype, shape, begin, end)."""
    where = f"tensor {name!r}:"
    if not isinstance(info, dict):
        raise error(path, f"{where} expected an object with dtype, shape and data_offsets")
    dtype_name = info.get("dtype")
    if not isinstance(dtype_name, str) or dtype_name not in DTYPES:
        raise error(path, f"{where} unknown dtype {reprlib.repr(dtype_name)} (supported: "
                     f"{', '.join(DTYPES)})")
    shape = info.get("shape")
    if not isinstance(shape, list) or not all(is_count(n) for n in shape):
        raise error(path, f"{where} shape must be a list of non-negative ints, got "
                     f"{reprlib.repr(shape)}")
    offsets = info.get("data_offsets")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(is_count, offsets))
            and offsets[0] <= offsets[1]):
        raise error(path, f"{where} data_offsets must be [begin, end] with 0 <= begin <= end,"
                     f" got {reprlib.repr(offsets)}")
    begin, end = offsets
    dtype = DTYPES[dtype_name]
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: a huge shape cannot overflow
    if end - begin != nbytes:
        raise error(path, f"{where} {dtype_name} of shape {reprlib.repr(shape)} needs {nbytes} "
                     f"bytes, but data_offsets {offsets} span {end - begin}")
    if end > buffer_size:
        raise error(path, f"{where} ends at byte {end} of the data, but the file holds only "
                     f"{buffer_size} bytes of data (truncated?)")
    return dtype, tuple(shape), begin, end


def is_count(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def tensor_array(path, name, buffer, dtype, shape, begin, end):
    """The tensor's bytes as a writable, C-contiguous NumPy array (a view when possible)."""
    native = dtype.newbyteorder("=")
    if begin == end:
        return np.zeros(shape, native)
    array = np.frombuffer(buffer, dtype, count=math.prod(shape), offset=begin).reshape(shape)
    if not (array.flags.aligned and array.dtype.isnative):  # from another writer / big-endian
        array = array.astype(native)
    if dtype.kind == "b" and array.view(np.uint8).max() > 1:
        raise error(path, f"tensor {name!r}: BOOL data holds bytes other than 0 and 1")
    return array



def error(path, what):
    return CheckpointError(f"cannot load {path!r}: {what}")
