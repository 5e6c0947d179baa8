"""Every Function of tinygen.ops through the one harness (tests/harness.py explains the
checks and how to add a case; the table is tests/op_cases.py)."""

import pytest
from conftest import DEVICES
from harness import (
    Env,
    all_functions,
    check_composition,
    check_device,
    check_float32,
    check_gradcheck,
    check_torch,
    functions_in_graph,
)
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from op_cases import CASES

BY_NAME = {case.name: case for case in CASES}
NAMES = list(BY_NAME)
TORCH_NAMES = [case.name for case in CASES if case.torch is not None]
PINNED = [pytest.param(case.name, i, id=f"{case.name}-pin{i}")
          for case in CASES for i in range(len(case.examples))]


def pinned_env(name, i, data):
    return Env(data.draw, fixed=BY_NAME[name].examples[i])


pinned = settings(max_examples=3)  # the pin fixes the hard part; the rest is drawn


def test_case_names_are_unique():
    assert len(BY_NAME) == len(CASES)


def functions_of(case):
    """The Functions in one build of `case`: one example, no shrinking, no check. Each case
    draws in its own run, so the table's size never exceeds one run's entropy budget."""
    found = set()

    @settings(max_examples=1, database=None, phases=[Phase.generate])
    @given(data=st.data())
    def build(data):
        leaves, fn, _ = case.build(Env(data.draw))
        found.update(functions_in_graph(fn(*leaves)))

    build()
    return found


def test_every_function_has_a_case():
    covered = set().union(*(functions_of(case) for case in CASES))
    missing = sorted(f"{f.__module__}.{f.__qualname__}" for f in all_functions() - covered)
    assert not missing, f"Functions with no case in tests/op_cases.py: {missing}"


# ---- (a) gradients against central differences ---------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_gradcheck(name, data):
    check_gradcheck(BY_NAME[name], Env(data.draw))


@pytest.mark.parametrize("name, i", PINNED)
@pinned
@given(data=st.data())
def test_gradcheck_pinned(name, i, data):
    check_gradcheck(BY_NAME[name], pinned_env(name, i, data))


# ---- (b) equal to the composition it replaces (and to NumPy's formula) ---------------------
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_equals_composition(name, data):
    check_composition(BY_NAME[name], Env(data.draw))


@pytest.mark.parametrize("name, i", PINNED)
@pinned
@given(data=st.data())
def test_equals_composition_pinned(name, i, data):
    check_composition(BY_NAME[name], pinned_env(name, i, data))


# ---- (c) float32 stays float32 --------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_float32_in_float32_out(name, data):
    check_float32(BY_NAME[name], Env(data.draw))


# ---- (d) every device gives the same answer -------------------------------------------------
# the answer on the CPU is the reference, so (d) runs on the other devices only
OTHER_DEVICES = [d for d in DEVICES if d != "cpu"]


@pytest.mark.parametrize("device", OTHER_DEVICES)
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=5)
@given(data=st.data())
def test_same_on_every_device(name, device, data):
    check_device(BY_NAME[name], Env(data.draw), device)


@pytest.mark.parametrize("device", OTHER_DEVICES)
@pytest.mark.parametrize("name, i", PINNED)
@pinned
@given(data=st.data())
def test_same_on_every_device_pinned(name, i, device, data):
    check_device(BY_NAME[name], pinned_env(name, i, data), device)


# ---- (e) against PyTorch at float32, where the case gives its PyTorch twin ----------------
@pytest.mark.parametrize("name", TORCH_NAMES)
@given(data=st.data())
def test_against_pytorch(name, data):
    pytest.importorskip("torch")
    check_torch(BY_NAME[name], Env(data.draw))
