"""Every CUDA source compiles with NVRTC for sm_80 (A100) and sm_90 (H100/H200) on this CPU
machine, no GPU needed; and the NumPy reference of dropout.cu's Philox generator is right.

NVRTC comes from pip's nvidia-cuda-nvrtc-cu12 wheel (the `cuda-compile` extra), called
through ctypes: libnvrtc.so needs no driver and no GPU. The compile tests skip without it.
The same extra's cuda-bindings (NVIDIA's Python API to NVRTC) compiles them once more.
"""

import ctypes
import glob
import os

import numpy as np
import pytest

from tinygen.ops import kernels, philox

ARCHS = ("sm_80", "sm_90")


def _load_nvrtc():
    try:
        import nvidia.cuda_nvrtc as pkg
    except ImportError:
        return None
    for folder in pkg.__path__:
        for lib in sorted(glob.glob(os.path.join(folder, "lib", "libnvrtc.so*"))):
            if ".alt." not in lib:
                return ctypes.CDLL(lib)
    return None


NVRTC = _load_nvrtc()


def nvrtc_compile(code, name, arch):
    """(ok, log, cubin size) of compiling `code` to a cubin for `arch`."""
    lib, prog = NVRTC, ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), code.encode(), name.encode(),
                                  0, None, None) == 0
    try:
        opts = [f"--gpu-architecture={arch}".encode(), b"--std=c++14"]
        status = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        cubin = ctypes.c_size_t(0)
        if status == 0:
            lib.nvrtcGetCUBINSize(prog, ctypes.byref(cubin))
        return status == 0, log.value.decode(errors="replace"), cubin.value
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


# every kernel each source must define (extern "C", so these are the symbols CuPy looks up)
EXPECTED = {
    "layer_norm": ["layer_norm_forward", "layer_norm_backward_input",
                   "layer_norm_backward_params"],
    "gelu": ["gelu_forward", "gelu_backward", "bias_gelu_forward", "bias_gelu_backward"],
    "attention_softmax": ["attention_softmax_forward", "attention_softmax_backward"],
    "cross_entropy": ["cross_entropy_forward_backward"],
    "adam": ["adam_step"],
    "dropout": ["dropout_apply", "dropout_mask"],
    "im2col": ["im2col", "col2im"],
}


def test_every_family_is_checked():
    assert set(EXPECTED) == set(kernels.KERNELS)


@pytest.mark.skipif(NVRTC is None, reason="NVRTC not installed (pip install .[cuda-compile])")
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", sorted(kernels.KERNELS))
def test_compiles_with_nvrtc(name, arch):
    code = kernels.source(name)
    ok, log, cubin = nvrtc_compile(code, kernels.KERNELS[name], arch)
    assert ok, f"{kernels.KERNELS[name]} does not compile for {arch}:\n{log}"
    assert "warning" not in log.lower(), f"{kernels.KERNELS[name]} ({arch}) warns:\n{log}"
    assert cubin > 0
    for kernel in EXPECTED[name]:
        assert f'extern "C" __global__ void {kernel}(' in code, kernel


@pytest.mark.parametrize("name", sorted(kernels.KERNELS))
def test_compiles_with_cuda_bindings(name):
    nvrtc = pytest.importorskip("cuda.bindings.nvrtc")
    err, prog = nvrtc.nvrtcCreateProgram(kernels.source(name).encode(),
                                         kernels.KERNELS[name].encode(), 0, [], [])
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS
    try:
        opts = [b"--gpu-architecture=sm_90", b"--std=c++14"]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        _, size = nvrtc.nvrtcGetProgramLogSize(prog)
        # a bytearray: NVRTC writes into the buffer, and `b" " * 1` is CPython's shared
        # one-byte object (writing the log's NUL into it turns every b" " into b"\x00")
        log = bytearray(size)
        nvrtc.nvrtcGetProgramLog(prog, log)
        assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS, bytes(log).decode(errors="replace")
        _, cubin = nvrtc.nvrtcGetCUBINSize(prog)
        assert cubin > 0
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


@pytest.mark.skipif(NVRTC is None, reason="NVRTC not installed (pip install .[cuda-compile])")
def test_a_broken_source_fails_with_its_log():
    ok, log, _ = nvrtc_compile('extern "C" __global__ void k(float* x) { x[0] = y; }',
                               "broken.cu", "sm_80")
    assert not ok and "identifier \"y\" is undefined" in log


def test_sources_expand_their_includes():
    for name in kernels.KERNELS:
        assert "#include" not in kernels.source(name), name


def test_switch_is_off_by_default_and_named():
    if not os.environ.get("TINYGEN_CUDA_KERNELS"):
        assert not any(kernels.enabled(n) for n in kernels.KERNELS)
    with pytest.raises(ValueError, match="unknown"):
        kernels.enable({"layer_nrom"})
    before = {n for n in kernels.KERNELS if kernels.enabled(n)}
    try:
        kernels.enable({"gelu"})
        assert kernels.enabled("gelu")
        assert not kernels.use("gelu", np.zeros(3, np.float32))     # NumPy: the reference
    finally:
        kernels.disable()
        kernels.enable(before)


# ---- the NumPy reference of dropout.cu's Philox-4x32-10 ---------------------------------
def _words(c, k):
    c = [np.array([v], dtype=np.uint32) for v in c]
    return [int(w[0]) for w in philox.philox4x32_10(*c, *k)]


def test_philox_known_answers():
    """Random123's known-answer vectors for philox4x32 with 10 rounds (kat_vectors)."""
    assert _words((0, 0, 0, 0), (0, 0)) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    assert _words((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2) == [
        0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    assert _words((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
                  (0xA4093822, 0x299F31D0)) == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def test_philox_is_deterministic_and_elementwise():
    a = philox.uniform((7, 13), seed=1234, offset=5)
    assert a.dtype == np.float32 and a.shape == (7, 13)
    np.testing.assert_array_equal(a, philox.uniform((7, 13), seed=1234, offset=5))
    # element i does not depend on how many are drawn: a prefix is a prefix
    np.testing.assert_array_equal(philox.uniform(50, 1234, 5)[:37], philox.uniform(37, 1234, 5))
    assert not np.array_equal(a, philox.uniform((7, 13), seed=1235, offset=5))


def test_philox_is_uniform():
    u = philox.uniform(200_000, seed=7).astype(np.float64)
    assert 0.0 <= u.min() and u.max() < 1.0
    counts = np.bincount((u * 20).astype(int), minlength=20)
    chi2 = ((counts - u.size / 20) ** 2 / (u.size / 20)).sum()
    assert chi2 < 50.0                      # 19 degrees of freedom: p < 1e-4 above 43.8
    assert abs(u.mean() - 0.5) < 0.003 and abs(u.var() - 1 / 12) < 0.002
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01       # neighbours uncorrelated


def test_philox_offsets_are_independent_streams():
    a, b = philox.uniform(100_000, seed=3, offset=0), philox.uniform(100_000, seed=3, offset=1)
    assert np.mean(a == b) < 1e-3
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.02
    # a stream at offset 1 is not the stream at offset 0 shifted by some elements
    words = philox.random_words(4096, 3, 0)
    assert not np.isin(philox.random_words(64, 3, 1), words).all()


def test_dropout_mask_rate_and_scale():
    mask = philox.dropout_mask((256, 384), p=0.2, seed=11, offset=2)
    assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.8)}
    assert abs((mask == 0).mean() - 0.2) < 0.005
    assert abs(mask.mean() - 1.0) < 0.01                    # inverted dropout keeps E[x]
    with pytest.raises(ValueError, match="p must be in"):
        philox.dropout_mask(3, p=1.0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        philox.uniform(3, seed=-1)
