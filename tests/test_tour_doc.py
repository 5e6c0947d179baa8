"""docs/tour.md cannot drift from the code: every `path:first-last` (`anchor`) citation
resolves (the file exists, the range is inside it, its first line holds the anchor, and
the numbers are current: `python docs/tour_lines.py --fix` re-syncs them), every path it
names exists, and every command it asks the reader to run parses (the exercise exists,
the pytest -k selection selects tests, the demo has the flags). docs/writing_a_function.md
is run: its examples execute and print the messages it shows."""

import contextlib
import importlib.util
import io
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tinygen.tour import EXERCISES

ROOT = Path(__file__).resolve().parents[1]
TOUR = (ROOT / "docs" / "tour.md").read_text(encoding="utf-8")
_spec = importlib.util.spec_from_file_location("tour_lines", ROOT / "docs" / "tour_lines.py")
tour_lines = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tour_lines)

CITATIONS = [m.groupdict() for m in tour_lines.citations(TOUR)]


def code_blocks(text, lang):
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.DOTALL)


COMMANDS = [line.strip() for block in code_blocks(TOUR, "bash")
            for line in block.splitlines() if line.strip()]


def test_the_tour_cites_code_and_sets_exercises():
    assert len(CITATIONS) >= 30
    for n, (module, _, _) in EXERCISES.items():
        assert f"tinygen/tour/{module}.py" in TOUR, f"exercise {n}'s file is not in the tour"
        assert f"python -m tinygen.tour check {n}" in COMMANDS, f"no check command for {n}"
    assert len(EXERCISES) >= 12


@pytest.mark.parametrize("c", CITATIONS, ids=lambda c: f"{c['path']}:{c['start']}")
def test_citation_resolves(c):
    path, start, end = ROOT / c["path"], int(c["start"]), int(c["end"])
    assert path.is_file(), f"{c['path']} does not exist"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert 1 <= start <= end <= len(lines), f"{c['path']}:{start}-{end} is outside the file " \
        f"({len(lines)} lines)"
    assert c["anchor"] in lines[start - 1], (
        f"{c['path']}:{start} does not hold {c['anchor']!r}: run python docs/tour_lines.py --fix")
    assert tour_lines.resolve(c["path"], start, end, c["anchor"]) == (start, end), (
        f"{c['path']}:{start}-{end} is out of date: run python docs/tour_lines.py --fix")


def test_every_named_path_exists():
    named = set(re.findall(r"`((?:tinygen|tests|demos|docs|benchmarks)/[\w./-]+)`", TOUR))
    named |= {m for m in re.findall(r"\]\(([\w./-]+\.md)\)", TOUR)}
    missing = [p for p in sorted(named) if not ((ROOT / p).exists() or
                                                 (ROOT / "docs" / p).exists())]
    assert not missing, f"the tour names paths that do not exist: {missing}"


@cache
def demo_help(demo):
    return subprocess.run([sys.executable, demo, "--help"], check=False, capture_output=True, text=True,
                          cwd=ROOT, timeout=120).stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_command_parses(command):
    words = shlex.split(command)
    if words[:3] == ["pip", "install", "-e"]:
        return
    assert words[0] == "python", f"not a python command: {command}"
    if words[1:3] == ["-m", "tinygen.tour"]:
        assert words[3] in ("list", "check"), command
        if words[3] == "check":
            assert all(w == "all" or int(w) in EXERCISES for w in words[4:]), command
    elif words[1:3] == ["-m", "pytest"]:
        assert (ROOT / words[3]).is_file(), f"{words[3]} does not exist"
        out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                              *words[3:]], check=False, capture_output=True, text=True, cwd=ROOT,
                             timeout=300).stdout
        assert re.search(r"^\d+(/\d+)? tests? (collected|selected)", out, flags=re.MULTILINE) and \
            "no tests ran" not in out, f"{command} selects no tests:\n{out[-500:]}"
    elif words[1].startswith("demos/"):
        assert (ROOT / words[1]).is_file(), f"{words[1]} does not exist"
        help_text = demo_help(words[1])
        for w in words[2:]:
            if w.startswith("--"):
                assert re.search(rf"{re.escape(w)}\b", help_text), f"{words[1]} has no {w}"
        model = [w for w in words if ":" in w and w.startswith("tinygen.")]
        for spec in model:  # --model module:Class names something importable
            module, _, cls = spec.partition(":")
            assert hasattr(importlib.import_module(module), cls), spec
    elif words[1] == "docs/tour_lines.py":
        assert set(words[2:]) <= {"--fix"}, command
    else:
        pytest.fail(f"the tour asks for a command this test does not know: {command}")


def test_the_line_numbers_are_current():
    with contextlib.redirect_stdout(io.StringIO()) as out:
        rc = tour_lines.main([])
    assert rc == 0, out.getvalue()


def test_writing_a_function_runs_and_shows_the_real_messages():
    text = (ROOT / "docs" / "writing_a_function.md").read_text(encoding="utf-8")
    namespace, out = {"__name__": "writing_a_function"}, io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in code_blocks(text, "python"):
            exec(compile(block, "writing_a_function.md", "exec"), namespace)  # noqa: S102
    printed = out.getvalue().splitlines()
    shown = [line for block in code_blocks(text, "text") for line in block.splitlines()]
    assert shown
    for line in shown:
        assert line in printed, f"docs/writing_a_function.md shows {line!r}, which the " \
            f"example does not print; it printed:\n" + "\n".join(printed)


def test_tour_lines_fix_rewrites_stale_numbers(tmp_path, monkeypatch):
    stale = tmp_path / "tour.md"
    stale.write_text("Read `tinygen/autograd.py:1-2` (`def unbroadcast(`) and "
                     "`tinygen/autograd.py:3-5` (`\"\"\"The autograd engine`).\n")
    monkeypatch.setattr(tour_lines, "TOUR", stale)
    monkeypatch.setattr(tour_lines, "ROOT", ROOT)
    with contextlib.redirect_stdout(io.StringIO()):
        assert tour_lines.main([]) == 1                      # stale: reported, exit 1
        assert tour_lines.main(["--fix"]) == 0
        assert tour_lines.main([]) == 0
    lines = (ROOT / "tinygen" / "autograd.py").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "def unbroadcast(" in line) + 1
    fixed = stale.read_text()
    assert f"`tinygen/autograd.py:{start}-" in fixed           # the def's block, found again
    assert "`tinygen/autograd.py:1-3` (`\"\"\"The autograd engine`)" in fixed  # length kept
    stale.write_text("`tinygen/autograd.py:1-2` (`def no_such_function(`)\n")
    with contextlib.redirect_stdout(io.StringIO()):
        assert tour_lines.main(["--fix"]) == 1               # unresolvable: fix by hand
