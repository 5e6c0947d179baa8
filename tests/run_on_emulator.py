"""Run a script with tinygen's "cuda" device on the CuPy emulator (tests/cupy_emulator.py):

    python tests/run_on_emulator.py demos/gpt.py --smoke --device cuda

Prints the emulator's launch / sync / upload counts for the whole run at the end."""

import os
import runpy
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cupy_emulator import COUNTS, cupy

import tinygen.backend

if __name__ == "__main__":
    tinygen.backend.cp = cupy
    script, sys.argv = sys.argv[1], sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    print(f"cupy emulator: {COUNTS.snapshot()}")
