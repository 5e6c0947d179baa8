"""Checkpoints: `save(obj, path)` and `load(path, device)` in the safetensors format.

The file layout is Hugging Face's safetensors (github.com/huggingface/safetensors, "Format";
drawn in safetensors_format.py, which reads and writes the bytes).

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

The bytes themselves -- header, checks, reading, memory map -- are safetensors_format.py's.
Loading only parses JSON and copies bytes -- no pickle, no eval -- so a file cannot run code,
and every header field is checked before it is used.
"""

import json
import os
import reprlib

import numpy as np

from tinygen.backend import check_device, get_array_module, to_device
from tinygen.safetensors_format import (  # noqa: F401  (CheckpointError, MappedFile: API)
    DTYPES,
    CheckpointError,
    MappedFile,
    build_header,
    error,
    read_file,
    tensor_array,
    write_atomic,
)

METADATA_KEY = "tinygen"  # the __metadata__ entry that holds a checkpoint's structure
FORMAT_VERSION = 1
TAGS = ("__tensor__", "__array__", "__dict__")


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
    header, order = build_header(leaves, metadata)
    write_atomic(path, header, [leaves[name] for name in order])


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
        metadata, entries, buffer = read_file(path)
    arrays = {name: tensor_array(path, name, buffer, *info) for name, info in entries.items()}
    if METADATA_KEY not in metadata:
        return {name: _make_tensor(to_device(array, device)) for name, array in arrays.items()}
    return _rebuild(path, metadata[METADATA_KEY], arrays, device)



def _make_tensor(array):
    from tinygen.tensor import Tensor  # imported here: tinygen.tensor does not import us

    return Tensor(array)


def _rebuild(path, text, arrays, device):
    """The checkpoint's structure, from its JSON skeleton and the loaded arrays."""
    try:
        structure = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise error(path, f"__metadata__[{METADATA_KEY!r}] is not valid JSON ({e})") from None
    if not (isinstance(structure, dict) and structure.get("version") == FORMAT_VERSION
            and "tree" in structure):
        raise error(path, f"__metadata__[{METADATA_KEY!r}] is not a version {FORMAT_VERSION} "
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
                raise error(path, f"the structure refers to tensor {reprlib.repr(value)}, "
                             "which is not in the file")
            used.add(value)
            array = to_device(arrays[value], device)
            return _make_tensor(array) if tag == "__tensor__" else array
        if tag == "__dict__" and isinstance(value, list) and all(
                isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))
                for pair in value):
            return {key: decode(item) for key, item in value}
        raise error(path, f"unexpected entry {reprlib.repr(sorted(node))} in the structure "
                     f"(expected one of {', '.join(TAGS)} alone)")

    try:
        obj = decode(structure["tree"])
    except RecursionError:
        raise error(path, "the structure is nested too deeply") from None
    if used != arrays.keys():
        unused = reprlib.repr(sorted(arrays.keys() - used))
        raise error(path, f"tensors {unused} are in the file but not in the structure")
    return obj


