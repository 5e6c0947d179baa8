"""The tour's exercises (docs/tour.md, tinygen/tour/): every check fails on the stub as
shipped and passes on the reference solution, so no exercise can be passed by doing
nothing and none is impossible.

A reader who works through the tour edits the stubs in place; the stub half of this test
then skips for the edited files (their hash no longer matches tinygen/tour/STUBS.sha256),
so the suite stays green while the reader checks their own work with
`python -m tinygen.tour check N`. CI sets TINYGEN_TOUR_PRISTINE=1 (.ci/run): there an
edited stub whose hash was not updated fails instead of skipping. After changing a stub
on purpose: cd tinygen/tour && sha256sum ex*.py llama.py > STUBS.sha256
"""

import hashlib
import os
from pathlib import Path

import pytest

from tinygen.tour import EXERCISES, check
from tinygen.tour.__main__ import main

TOUR = Path(__file__).resolve().parents[1] / "tinygen" / "tour"
SHIPPED = dict(reversed(line.split()) for line in (TOUR / "STUBS.sha256").read_text()
               .splitlines())


def test_every_stub_is_in_the_manifest():
    assert sorted(SHIPPED) == sorted(f"{m}.py" for m, _, _ in EXERCISES.values())


@pytest.mark.parametrize("n", list(EXERCISES))
def test_check_passes_on_the_solution(n):
    check(n, solution=True)


@pytest.mark.parametrize("n", list(EXERCISES))
def test_check_fails_on_the_stub(n):
    name = f"{EXERCISES[n][0]}.py"
    digest = hashlib.sha256((TOUR / name).read_bytes()).hexdigest()
    if digest != SHIPPED[name]:
        if os.environ.get("TINYGEN_TOUR_PRISTINE") == "1":
            pytest.fail(f"tinygen/tour/{name} differs from the stub in STUBS.sha256: "
                        "update the manifest (see this file's docstring)")
        pytest.skip(f"tinygen/tour/{name} has been edited (a reader's answer)")
    with pytest.raises((AssertionError, NotImplementedError)):
        check(n, solution=False)


def test_command_line(capsys):
    assert main(["check", "3", "--solution"]) == 0
    assert "exercise  3 PASS" in capsys.readouterr().out
    assert main(["list"]) == 0
    assert "tinygen/tour/ex01_tanh.py" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["check", "99"])


def test_the_library_does_not_import_the_tour():
    import subprocess
    import sys

    code = "import sys, tinygen, tinygen.nn, tinygen.models.gpt; print('tinygen.tour' in " \
           "sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=TOUR.parents[1]).stdout.strip()
    assert out == "False"
