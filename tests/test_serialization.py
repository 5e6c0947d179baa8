import json
import math
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygen import serialization
from tinygen.serialization import CheckpointError, load, save
from tinygen.tensor import Tensor

try:
    import safetensors.numpy as official
except ImportError:  # the compatibility tests need the reference implementation
    official = None
needs_official = pytest.mark.skipif(official is None, reason="safetensors is not installed")

DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
          np.uint64, np.uint32, np.uint16, np.uint8, np.bool_]


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return n, json.loads(f.read(n))


def write_raw(path, header, buffer=b"", n=None):
    """A hand-made safetensors file: `header` is a dict (dumped to JSON) or raw bytes."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw) if n is None else n) + raw + buffer)
    return path


def assert_same_array(got, want):
    """Same dtype, shape and bytes (so NaN payloads and -0.0 count too)."""
    assert isinstance(got, np.ndarray)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == np.ascontiguousarray(want).tobytes()


# ---- round trips --------------------------------------------------------------------------

def test_state_dict_round_trip(tmp_path):
    state = {"transformer.wte.weight": Tensor(np.arange(12, dtype=np.float32).reshape(4, 3)),
             "transformer.h.0.attn.bias": np.tril(np.ones((3, 3), dtype=bool)),
             "lm_head.step": Tensor(np.array(7, dtype=np.int64))}
    save(state, tmp_path / "model.safetensors")

    _, header = read_header(tmp_path / "model.safetensors")
    assert list(header) == list(state)  # tensor names are exactly the keys; no metadata
    loaded = load(tmp_path / "model.safetensors")
    assert list(loaded) == list(state)
    for name, value in state.items():
        assert isinstance(loaded[name], Tensor)  # arrays come back as Tensors too
        assert_same_array(loaded[name].data, value.data if isinstance(value, Tensor) else value)
        assert not loaded[name].requires_grad


SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)  # 0-d and size 0


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hnp.arrays(st.sampled_from(DTYPES), SHAPES), hnp.arrays(np.float32, st.integers(0, 5)))
def test_any_dtype_and_shape_round_trips(tmp_path, array, other):
    path = tmp_path / "x.safetensors"  # reused: each example also overwrites the last file
    save({"a": array, "b": Tensor(other)}, path)
    loaded = load(path)
    assert_same_array(loaded["a"].data, array)
    assert_same_array(loaded["b"].data, other)
    for tensor in loaded.values():
        assert tensor.data.flags.writeable and tensor.data.flags.c_contiguous
        assert tensor.data.flags.aligned


def load_single(tmp_path, value):
    save({"value": value}, tmp_path / "single.safetensors")
    return load(tmp_path / "single.safetensors")["value"]


def test_checkpoint_round_trip(tmp_path):
    weights = {"wte.weight": Tensor(np.random.default_rng(0).standard_normal((5, 3)))}
    checkpoint = {
        "model": weights,
        "optimizer": {"state": {0: {"step": 3, "exp_avg": np.full(4, 0.5, np.float32)},
                                1: {"step": 3, "exp_avg": np.zeros((0, 2), np.float32)}},
                      "param_groups": [{"lr": 3e-4, "betas": (0.9, 0.95), "params": [0, 1]}]},
        "step": 100,
        "best_loss": None,
        "floats": [0.1, 1 / 3, -0.0, 5e-324, 1.7976931348623157e308, math.inf, -math.inf],
        "big": 2**200 + 1,
        "flags": [True, False],
        "config": {"n_embd": 48, "name": "gpt ünïcødé 日本語", "__private": "kept"},
        "numpy_scalars": [np.float32(1.5), np.int64(-3), np.bool_(True)],
        "mixed_keys": {1: "int", "1": "str", -2: "negative"},
        "empty": {"dict": {}, "list": []},
    }
    save(checkpoint, tmp_path / "ckpt.safetensors")
    loaded = load(tmp_path / "ckpt.safetensors")

    assert isinstance(loaded["model"]["wte.weight"], Tensor)
    assert_same_array(loaded["model"]["wte.weight"].data, weights["wte.weight"].data)
    state = loaded["optimizer"]["state"]
    assert list(state) == [0, 1]  # int keys come back as ints, in order
    assert state[0]["step"] == 3
    assert_same_array(state[0]["exp_avg"], checkpoint["optimizer"]["state"][0]["exp_avg"])
    assert_same_array(state[1]["exp_avg"], np.zeros((0, 2), np.float32))
    assert loaded["optimizer"]["param_groups"] == [
        {"lr": 3e-4, "betas": [0.9, 0.95], "params": [0, 1]}]  # tuples come back as lists
    assert loaded["step"] == 100 and loaded["best_loss"] is None
    assert [struct.pack("<d", x) for x in loaded["floats"]] == [
        struct.pack("<d", x) for x in checkpoint["floats"]]  # bit-exact, -0.0 included
    assert loaded["big"] == 2**200 + 1
    assert loaded["flags"] == [True, False] and type(loaded["flags"][0]) is bool
    assert loaded["config"] == checkpoint["config"]
    assert loaded["numpy_scalars"] == [1.5, -3, True]
    assert loaded["mixed_keys"] == {1: "int", "1": "str", -2: "negative"}
    assert loaded["empty"] == {"dict": {}, "list": []}
    assert math.isnan(load_single(tmp_path, math.nan))


def test_clashing_tensor_names_get_distinct_names(tmp_path):
    checkpoint = {"a.b": np.ones(2), "a": {"b": np.zeros(3)}}
    save(checkpoint, tmp_path / "c.safetensors")
    loaded = load(tmp_path / "c.safetensors")
    assert_same_array(loaded["a.b"], checkpoint["a.b"])
    assert_same_array(loaded["a"]["b"], checkpoint["a"]["b"])


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.MT19937])
def test_rng_state_round_trip(tmp_path, bit_generator):
    rng = np.random.Generator(bit_generator(1234))
    rng.standard_normal(7)  # move away from the seed, leaving a cached half-draw in PCG64
    rng.integers(0, 10, 3, dtype=np.uint32)
    save({"rng": rng.bit_generator.state, "step": 1}, tmp_path / "rng.safetensors")
    expected = rng.standard_normal(5), rng.integers(0, 2**62, 5), rng.random(3, np.float32)

    restored = np.random.Generator(bit_generator())
    restored.bit_generator.state = load(tmp_path / "rng.safetensors")["rng"]
    got = (restored.standard_normal(5), restored.integers(0, 2**62, 5),
           restored.random(3, np.float32))
    for g, e in zip(got, expected, strict=True):
        assert_same_array(g, e)


def test_resumed_run_draws_the_same_numbers(tmp_path):
    import tinygen as tg

    tg.manual_seed(0)
    tg.randn(3)
    save({"rng": tg.get_rng_state(), "step": 5}, tmp_path / "resume.safetensors")
    expected = tg.randn(4).numpy()
    tg.manual_seed(99)  # a fresh process would start elsewhere
    tg.set_rng_state(load(tmp_path / "resume.safetensors")["rng"])
    np.testing.assert_array_equal(tg.randn(4).numpy(), expected)


def test_accepts_non_contiguous_and_big_endian_arrays(tmp_path):
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    save({"t": values.T, "be": values.astype(">f4")}, tmp_path / "x.safetensors")
    loaded = load(tmp_path / "x.safetensors")
    np.testing.assert_array_equal(loaded["t"].data, values.T)
    assert loaded["be"].data.dtype == np.float32
    np.testing.assert_array_equal(loaded["be"].data, values)


def test_loaded_arrays_can_be_updated_in_place(tmp_path):
    save({"w": np.ones(4, np.float32), "m": np.ones(2, np.int8)}, tmp_path / "m.safetensors")
    w = load(tmp_path / "m.safetensors")["w"]
    w.data -= 0.5  # what an optimizer step does
    np.testing.assert_array_equal(w.data, np.full(4, 0.5, np.float32))


def test_unaligned_tensors_from_other_writers_are_aligned_on_load(tmp_path):
    header = {"b": {"dtype": "I8", "shape": [1], "data_offsets": [0, 1]},
              "w": {"dtype": "F32", "shape": [2], "data_offsets": [1, 9]}}
    write_raw(tmp_path / "u.safetensors", header, b"\x05" + np.array([1, 2], "<f4").tobytes())
    w = load(tmp_path / "u.safetensors")["w"].data
    assert w.flags.aligned and w.flags.writeable and w.flags.c_contiguous
    np.testing.assert_array_equal(w, [1, 2])


# ---- the official safetensors package reads our files and we read its ---------------------

@needs_official
def test_official_reader_opens_our_files(tmp_path):
    arrays = {name: np.arange(6).reshape(2, 3).astype(name)
              for name in ["float64", "float32", "float16", "int64", "int8", "uint8", "bool"]}
    arrays["scalar"], arrays["empty"] = np.array(2.5), np.zeros((3, 0), np.float32)
    save({**arrays, "tensor": Tensor(np.ones(3, np.float32))}, tmp_path / "ours.safetensors")
    theirs = official.load_file(str(tmp_path / "ours.safetensors"))
    for name, array in arrays.items():
        assert_same_array(theirs[name], array)

    checkpoint = {"model": {"w": np.ones(3, np.float32)}, "optimizer": {"state": {0: {}}}}
    save(checkpoint, tmp_path / "ckpt.safetensors")
    assert list(official.load_file(str(tmp_path / "ckpt.safetensors"))) == ["model.w"]


@needs_official
def test_we_open_official_files(tmp_path):
    arrays = {"b": np.array([True, False]), "a": np.arange(5, dtype=np.int16),
              "c": np.linspace(0, 1, 6).reshape(2, 3), "d": np.array(3, np.uint8),
              "e": np.zeros((0,), np.float32)}
    official.save_file(arrays, str(tmp_path / "theirs.safetensors"), metadata={"format": "np"})
    loaded = load(tmp_path / "theirs.safetensors")
    assert sorted(loaded) == sorted(arrays)
    for name, array in arrays.items():
        assert_same_array(loaded[name].data, array)


def test_header_is_padded_to_eight_bytes(tmp_path):
    save({"x": np.ones(1, np.float32)}, tmp_path / "p.safetensors")
    n, _ = read_header(tmp_path / "p.safetensors")
    assert n % 8 == 0
    assert os.path.getsize(tmp_path / "p.safetensors") == 8 + n + 4


# ---- malformed files ----------------------------------------------------------------------

F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


BAD_FILES = {  # name: (header, buffer, header length to write instead of the real one, error)
    "shorter than 8 bytes": (b"", b"", None, "too short"),
    "huge header length": (b"{}", b"", 2**40, "over the 100000000-byte limit"),
    "header past the end": (b"{}", b"", 64, "header claims"),
    "header not UTF-8": (b'{"\xff": 1}', b"", None, "not valid UTF-8 JSON"),
    "header not JSON": (b"{'x': 1}", b"", None, "not valid UTF-8 JSON"),
    "header not an object": (b"[1, 2]", b"", None, "must be a JSON object"),
    "entry not an object": ({"x": [1, 2]}, b"", None, "expected an object"),
    "unknown dtype": ({"x": entry(dtype="BF16", offsets=(0, 4))}, bytes(4), None,
                      "unknown dtype 'BF16'"),
    "dtype not a string": ({"x": entry(dtype=["F32"])}, bytes(8), None, "unknown dtype"),
    "negative shape": ({"x": entry(shape=(-2,))}, bytes(8), None, "shape must be"),
    "float shape": ({"x": entry(shape=(2.0,))}, bytes(8), None, "shape must be"),
    "shape not a list": ({"x": {**F32_2, "shape": 2}}, bytes(8), None, "shape must be"),
    "offsets backwards": ({"x": entry(offsets=(8, 0))}, bytes(8), None, "data_offsets must"),
    "offsets too short": ({"x": entry(offsets=(8,))}, bytes(8), None, "data_offsets must"),
    "offsets not ints": ({"x": entry(offsets=("0", 8))}, bytes(8), None, "data_offsets must"),
    "size mismatch": ({"x": entry(offsets=(0, 4))}, bytes(4), None, "needs 8 bytes"),
    "offsets past the end": ({"x": entry(offsets=(8, 16))}, bytes(8), None, "truncated"),
    "truncated": ({"x": F32_2}, bytes(5), None, "truncated"),
    "overlap": ({"x": F32_2, "y": entry(offsets=(4, 12))}, bytes(12), None, "overlaps"),
    "gap": ({"x": F32_2, "y": entry(offsets=(12, 20))}, bytes(20), None, "belong to no"),
    "trailing bytes": ({"x": F32_2}, bytes(12), None, "after the last tensor"),
    "metadata not str->str": ({"__metadata__": {"step": 3}}, b"", None, "string -> string"),
    "bool bytes not 0/1": ({"x": entry("BOOL", (2,), (0, 2))}, b"\x01\x07", None, "BOOL"),
    "structure not JSON": ({"__metadata__": {"tinygen": "{"}}, b"", None, "not valid JSON"),
    "structure wrong version": ({"__metadata__": {"tinygen": '{"version": 9, "tree": 1}'}},
                                b"", None, "not a version 1"),
    "missing tensor": ({"__metadata__": {"tinygen": '{"version": 1, "tree": '
                                         '{"w": {"__tensor__": "w"}}}'}}, b"", None,
                       "refers to tensor 'w'"),
    "unreferenced tensor": ({"__metadata__": {"tinygen": '{"version": 1, "tree": {}}'},
                             "x": F32_2}, bytes(8), None, "not in the structure"),
    "unknown tag": ({"__metadata__": {"tinygen": '{"version": 1, "tree": {"__code__": "x"}}'}},
                    b"", None, "unexpected entry"),
    "bad dict pairs": ({"__metadata__": {"tinygen": '{"version": 1, "tree": {"__dict__": 3}}'}},
                       b"", None, "unexpected entry"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_malformed_files_raise_checkpoint_error(tmp_path, case):
    header, buffer, n, message = BAD_FILES[case]
    path = tmp_path / "bad.safetensors"
    if case == "shorter than 8 bytes":
        path.write_bytes(b"\x01\x02\x03")
    else:
        write_raw(path, header, buffer, n)
    with pytest.raises(CheckpointError, match=message) as error:
        load(path)
    assert str(path) in str(error.value)  # the message names the file
    assert isinstance(error.value, ValueError)


def test_truncated_copy_of_a_real_checkpoint(tmp_path):
    save({"w": np.ones((4, 4), np.float32)}, tmp_path / "good.safetensors")
    data = (tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-3])
    with pytest.raises(CheckpointError, match="truncated"):
        load(tmp_path / "cut.safetensors")


# ---- saving: atomic writes and bad input --------------------------------------------------

def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save({"w": np.ones(3, np.float32)}, path)
    before = path.read_bytes()

    with pytest.raises(TypeError, match="cannot store a 'object' at key bad"):
        save({"w": np.zeros(3, np.float32), "bad": object()}, path)
    with pytest.raises(TypeError, match="complex"):
        save({"w": np.zeros(3, np.complex64)}, path)

    def fail(fd):  # fail after the data went out, just before the rename
        raise OSError("disk full")

    monkeypatch.setattr(serialization.os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        save({"w": np.zeros(1000, np.float32)}, path)

    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save({"w": np.ones(3, np.float32)}, str(path))
    save({"step": 2, "w": np.zeros(2)}, str(path))
    assert load(str(path))["step"] == 2
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_save_rejects_unsupported_keys(tmp_path):
    with pytest.raises(TypeError, match="dict keys must be str or int"):
        save({"state": {(0, 1): np.ones(1)}}, tmp_path / "x.safetensors")
    assert os.listdir(tmp_path) == []


def test_save_into_missing_directory_fails_cleanly(tmp_path):
    with pytest.raises(FileNotFoundError):
        save({"w": np.ones(1)}, tmp_path / "nope" / "x.safetensors")


# ---- devices ------------------------------------------------------------------------------

def test_device_cpu_and_unknown_device(tmp_path):
    save({"w": np.ones(2, np.float32), "opt": {"m": np.ones(2)}}, tmp_path / "d.safetensors")
    loaded = load(tmp_path / "d.safetensors", device="cpu")
    assert loaded["w"].device == "cpu" and isinstance(loaded["opt"]["m"], np.ndarray)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        load(tmp_path / "d.safetensors", device="tpu")
    with pytest.raises(ValueError, match="unknown device"):  # checked before the file is opened
        load(tmp_path / "missing.safetensors", device="tpu")
