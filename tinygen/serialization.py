"""Checkpoints: `save(obj, path)` and `load(path, device)` in the safetensors format.

The file layout is Hugging Face's safetensors (github.com/huggingface/safetensors, "Format"):

    8 bytes   N, the length of the header, an unsigned little-endian integer
    N bytes   the header: UTF-8 JSON, padded with spaces to a multiple of 8 bytes
              {"__metadata__": {str: str},                          <- optional
               name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
    the rest  the byte buffer: each tensor's raw little-endian C-order bytes, back to back,
              with no gaps; `data_offsets` count from the start of this buffer.

A model's state_dict (a flat dict of str -> Tensor or array) becomes a plain safetensors file
whose tensor names are the state_dict keys, so other tools can open the weights.

A training checkpoint (dicts and lists nested to any depth, arrays anywhere, plus plain JSON
values: step, config, RNG state) becomes the same kind of file. Each array is a tensor named
by its path ("optimizer.state.0.exp_avg"), and the rest of the structure is stored as JSON in
__metadata__["tinygen"], with a placeholder where each array was:

    {"version": 1,
     "tree": {"model": {"wte.weight": {"__tensor__": "model.wte.weight"}},
              "optimizer": {"state": {"__dict__": [
                  [0, {"exp_avg": {"__array__": "optimizer.state.0.exp_avg"}}]]}},
              "step": 100}}

A dict is written as a JSON object when its keys are strings not starting with "__";
any other dict (int keys, such as an optimizer's per-parameter state) is written as
{"__dict__": [[key, value], ...]} so that int keys come back as ints. "__tensor__" marks a
Tensor and "__array__" a raw array, so each comes back as what was saved.

Loading only parses JSON and copies bytes -- no pickle, no eval -- so a file cannot run code,
and every header field is checked before it is used.
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

from tinygen.backend import check_device, get_array_module, to_device, to_numpy

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
METADATA_KEY = "tinygen"  # the __metadata__ entry that holds a checkpoint's structure
FORMAT_VERSION = 1
TAGS = ("__tensor__", "__array__", "__dict__")


class CheckpointError(ValueError):
    """A file that is not a valid safetensors file or tinygen checkpoint."""


def _is_array(x):
    return isinstance(x, np.ndarray) or get_array_module(x) is not np


def _is_tensor(x):
    """Duck-typed: anything that is not an array but holds one in `.data` (a Tensor, a
    Parameter). Checked this way so this module need not import tinygen.tensor."""
    return not _is_array(x) and _is_array(getattr(x, "data", None))


# ---- save ---------------------------------------------------------------------------------

def save(obj, path, metadata=None):
    """Write `obj` to `path` as a safetensors file, atomically.

    `obj` is a state_dict (str -> Tensor or array) or a nested training checkpoint: dicts
    (str or int keys), lists and tuples holding Tensors, arrays and JSON values (None, bool,
    int, float, str). NumPy scalars are stored as Python numbers and tuples come back as lists.
    A Tensor shared by two entries is stored twice. `metadata` (str -> str, state_dicts
    only) goes into the header's __metadata__, e.g. {"format": "pt"} for transformers.
    """
    path = os.fspath(path)
    leaves = {}  # tensor name -> the array to write, in the order they were found
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise TypeError("save: metadata must be a dict of str -> str")
    if _is_state_dict(obj):
        for name, value in obj.items():
            leaves[name] = value.data if _is_tensor(value) else value
        # a plain file, the way other tools write weights
    else:
        tree = _encode(obj, (), leaves)
        structure = {"version": FORMAT_VERSION, "tree": tree}
        text = json.dumps(structure, ensure_ascii=False, separators=(",", ":"))
        if metadata is not None:
            raise TypeError("save: metadata is for state_dicts; a checkpoint keeps its own")
        metadata = {METADATA_KEY: text}
    header, order = _build_header(leaves, metadata)
    _write_atomic(path, header, [leaves[name] for name in order])


def _is_state_dict(obj):
    return isinstance(obj, dict) and all(
        isinstance(key, str) and key != "__metadata__" and (_is_tensor(v) or _is_array(v))
        for key, v in obj.items())


def _encode(node, path, leaves):
    """The JSON skeleton of `node`; every array found is moved into `leaves`."""
    if _is_tensor(node) or _is_array(node):
        base = ".".join(str(key) for key in path) or "tensor"
        name, copy = base, 1
        while name in leaves:  # {"a.b": x, "a": {"b": y}} would give two tensors "a.b"
            name, copy = f"{base}~{copy}", copy + 1
        if _is_tensor(node):
            leaves[name] = node.data
            return {"__tensor__": name}
        leaves[name] = node
        return {"__array__": name}
    if isinstance(node, np.generic):  # np.float32(1.5) -> 1.5
        return _encode(node.item(), path, leaves)
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, (list, tuple)):
        return [_encode(item, path + (i,), leaves) for i, item in enumerate(node)]
    if isinstance(node, dict):
        for key in node:
            if not isinstance(key, (str, int)):
                raise TypeError(f"save: dict keys must be str or int, got {key!r} at "
                                f"{_where(path)}")
        items = {key: _encode(value, path + (key,), leaves) for key, value in node.items()}
        if all(isinstance(key, str) and not key.startswith("__") for key in items):
            return items
        return {"__dict__": [[key, value] for key, value in items.items()]}
    raise TypeError(f"save: cannot store a {type(node).__name__!r} at {_where(path)}; a "
                    "checkpoint holds Tensors, arrays, dicts, lists and JSON values only")


def _where(path):
    return "the top level" if not path else "key " + ".".join(str(key) for key in path)


def _build_header(leaves, metadata):
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


def _write_atomic(path, header, arrays):
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


# ---- load ---------------------------------------------------------------------------------

def load(path, device="cpu", mmap=False):
    """Read a file written by `save` (or by any safetensors writer) onto `device`.

    A plain safetensors file comes back as a dict of name -> Tensor, in header order. A
    checkpoint comes back with its nesting, int keys and values as saved (tuples as lists);
    Tensors come back as Tensors (not requiring grad) and raw arrays as arrays of `device`'s
    array module. On the CPU the arrays are writable, C-contiguous views into one buffer
    read from the file, so an optimizer can update them in place. With mmap=True the file
    is memory-mapped instead of read: nothing is read until used, and on the CPU the arrays
    are read-only views into the mapping (as torch.load(mmap=True) and safetensors' own
    safe_open do); see MappedFile to copy tensors out without holding the file in memory.
    Raises CheckpointError (a ValueError) if the file is malformed.
    """
    device = check_device(device)
    path = os.fspath(path)
    if mmap:
        mapped = MappedFile(path)
        metadata, entries, buffer = mapped.metadata, mapped.entries, mapped.buffer
    else:
        metadata, entries, buffer = _read(path)
    arrays = {name: _array(path, name, buffer, *info) for name, info in entries.items()}
    if METADATA_KEY not in metadata:
        return {name: _make_tensor(to_device(array, device)) for name, array in arrays.items()}
    return _rebuild(path, metadata[METADATA_KEY], arrays, device)


def _read(path):
    """The checked header -- metadata and name -> (dtype, shape, begin, end) -- and the
    byte buffer that follows it."""
    with open(path, "rb") as f:
        size, n, metadata, entries = _read_header(path, f)
        buffer = bytearray(size - 8 - n)  # one read; the tensors are views into it
        if f.readinto(buffer) != len(buffer):
            raise _error(path, "the file became shorter while it was being read")
    return metadata, entries, buffer


def _read_header(path, f):
    """(file size, header length, metadata, checked entries) of the open file `f`."""
    size = os.fstat(f.fileno()).st_size
    if size < 8:
        raise _error(path, f"the file is {size} bytes long, too short to hold even the "
                     "8-byte header length")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > MAX_HEADER_BYTES:
        raise _error(path, f"the header length {n} is over the {MAX_HEADER_BYTES}-byte "
                     "limit (is this a safetensors file?)")
    if 8 + n > size:
        raise _error(path, f"the header claims to be {n} bytes long, but the file is only "
                     f"{size} bytes")
    return (size, n) + _parse_header(path, f.read(n), size - 8 - n)


class MappedFile:
    """A safetensors file memory-mapped read-only, its header checked as `load` checks it.

    `array(name)` is a read-only view (no bytes are read until used); `copy_into(name, out)`
    copies a tensor into `out` in slabs of SLAB_BYTES and hands each slab's pages back to
    the OS once copied (madvise MADV_DONTNEED), so copying a whole file into a model holds
    at most one slab of the file in memory besides the model: memory-frugal loading.
    """

    SLAB_BYTES = 1 << 24

    def __init__(self, path):
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            _, n, self.metadata, self.entries = _read_header(self.path, f)
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._start = 8 + n  # where the byte buffer begins in the file
        self.buffer = memoryview(self._map)[self._start:]

    def array(self, name):
        if name not in self.entries:
            raise KeyError(f"{self.path!r} holds no tensor {name!r}")
        return _array(self.path, name, self.buffer, *self.entries[name])

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


def _parse_header(path, raw, buffer_size):
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError
        raise _error(path, f"the header is not valid UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise _error(path, f"the header must be a JSON object, got {type(header).__name__}")

    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
            isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise _error(path, "__metadata__ must be an object of string -> string")
    checked = {name: _check_entry(path, name, info, buffer_size) for name, info in header.items()}

    # The tensors must tile the buffer exactly: no overlaps (two tensors sharing bytes),
    # no gaps and nothing after the last one -- the official format's rule.
    position, previous = 0, None
    for begin, end, name in sorted((info[2], info[3], name) for name, info in checked.items()):
        if begin < position:
            raise _error(path, f"tensor {name!r} (bytes {begin}..{end}) overlaps tensor "
                         f"{previous!r}, which ends at byte {position}")
        if begin > position:
            raise _error(path, f"bytes {position}..{begin} of the data belong to no tensor")
        position, previous = end, name
    if position != buffer_size:
        raise _error(path, f"{buffer_size - position} bytes after the last tensor belong to "
                     "no tensor")
    return metadata or {}, checked


def _check_entry(path, name, info, buffer_size):
    """Validate one header entry; return (dtype, shape, begin, end)."""
    where = f"tensor {name!r}:"
    if not isinstance(info, dict):
        raise _error(path, f"{where} expected an object with dtype, shape and data_offsets")
    dtype_name = info.get("dtype")
    if not isinstance(dtype_name, str) or dtype_name not in DTYPES:
        raise _error(path, f"{where} unknown dtype {reprlib.repr(dtype_name)} (supported: "
                     f"{', '.join(DTYPES)})")
    shape = info.get("shape")
    if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
        raise _error(path, f"{where} shape must be a list of non-negative ints, got "
                     f"{reprlib.repr(shape)}")
    offsets = info.get("data_offsets")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))
            and offsets[0] <= offsets[1]):
        raise _error(path, f"{where} data_offsets must be [begin, end] with 0 <= begin <= end,"
                     f" got {reprlib.repr(offsets)}")
    begin, end = offsets
    dtype = DTYPES[dtype_name]
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: a huge shape cannot overflow
    if end - begin != nbytes:
        raise _error(path, f"{where} {dtype_name} of shape {reprlib.repr(shape)} needs {nbytes} "
                     f"bytes, but data_offsets {offsets} span {end - begin}")
    if end > buffer_size:
        raise _error(path, f"{where} ends at byte {end} of the data, but the file holds only "
                     f"{buffer_size} bytes of data (truncated?)")
    return dtype, tuple(shape), begin, end


def _is_count(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _array(path, name, buffer, dtype, shape, begin, end):
    """The tensor's bytes as a writable, C-contiguous NumPy array (a view when possible)."""
    native = dtype.newbyteorder("=")
    if begin == end:
        return np.zeros(shape, native)
    array = np.frombuffer(buffer, dtype, count=math.prod(shape), offset=begin).reshape(shape)
    if not (array.flags.aligned and array.dtype.isnative):  # from another writer / big-endian
        array = array.astype(native)
    if dtype.kind == "b" and array.view(np.uint8).max() > 1:
        raise _error(path, f"tensor {name!r}: BOOL data holds bytes other than 0 and 1")
    return array


def _make_tensor(array):
    from tinygen.tensor import Tensor  # imported here: tinygen.tensor does not import us

    return Tensor(array)


def _rebuild(path, text, arrays, device):
    """The checkpoint's structure, from its JSON skeleton and the loaded arrays."""
    try:
        structure = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise _error(path, f"__metadata__[{METADATA_KEY!r}] is not valid JSON ({e})") from None
    if not (isinstance(structure, dict) and structure.get("version") == FORMAT_VERSION
            and "tree" in structure):
        raise _error(path, f"__metadata__[{METADATA_KEY!r}] is not a version {FORMAT_VERSION} "
                     "tinygen structure")
    used = set()

    def decode(node):
        if isinstance(node, list):
            return [decode(item) for item in node]
        if not isinstance(node, dict):
            return node  # None, bool, int, float, str
        if not any(key.startswith("__") for key in node):
            return {key: decode(value) for key, value in node.items()}
        tag, value = next(iter(node.items())) if len(node) == 1 else (None, None)
        if tag in ("__tensor__", "__array__"):
            if not isinstance(value, str) or value not in arrays:
                raise _error(path, f"the structure refers to tensor {reprlib.repr(value)}, "
                             "which is not in the file")
            used.add(value)
            array = to_device(arrays[value], device)
            return _make_tensor(array) if tag == "__tensor__" else array
        if tag == "__dict__" and isinstance(value, list) and all(
                isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))
                for pair in value):
            return {key: decode(item) for key, item in value}
        raise _error(path, f"unexpected entry {reprlib.repr(sorted(node))} in the structure "
                     f"(expected one of {', '.join(TAGS)} alone)")

    try:
        obj = decode(structure["tree"])
    except RecursionError:
        raise _error(path, "the structure is nested too deeply") from None
    if used != arrays.keys():
        unused = reprlib.repr(sorted(arrays.keys() - used))
        raise _error(path, f"tensors {unused} are in the file but not in the structure")
    return obj


def _error(path, what):
    return CheckpointError(f"cannot load {path!r}: {what}")
