"""Every demo runs with `--smoke --device cuda` on the CuPy emulator (or real CuPy with a GPU),
each in its own process, in a temporary folder (tests/run_on_emulator.py)."""

import os
import subprocess
import sys

import pytest
from conftest import EMULATED_CUDA

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMOS = ["gpt", "vae", "gan", "clip", "dalle", "ppo_cartpole", "rlhf"]


@pytest.mark.skipif(not EMULATED_CUDA, reason="on a GPU, run the demos themselves")
@pytest.mark.parametrize("demo", DEMOS)
def test_demo_smoke_on_cuda(demo, tmp_path):
    cmd = [sys.executable, os.path.join(ROOT, "tests", "run_on_emulator.py"),
           os.path.join(ROOT, "demos", f"{demo}.py"), "--smoke", "--device", "cuda"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": ROOT}, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "cupy emulator:" in out.stdout
