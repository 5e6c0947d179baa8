"""tinygen.data.programs: the generator, the structural key, held-out compositions, bugs."""

import numpy as np
import pytest

from tinygen.data.programs import (
    ALPHABET,
    BY_NAME,
    EOS,
    PAD,
    PRIMITIVES,
    ProgramTask,
    pad_left,
    structural_key,
    tokenizer,
)
from tinygen.rl.sandbox import run_tests


def test_at_least_fifteen_primitives_of_every_kind():
    assert len(PRIMITIVES) >= 15
    assert {p.kind for p in PRIMITIVES} == {"LL", "LI", "II"}
    assert len(BY_NAME) == len(PRIMITIVES)          # names are unique


def test_specs_are_consistent():
    task, rng = ProgramTask(), np.random.default_rng(0)
    depths = set()
    for _ in range(150):
        spec = task.sample(rng)
        depths.add(len(spec.steps))
        assert 1 <= len(spec.steps) <= 4
        assert len(spec.examples) == 2 and len(spec.tests) == 8
        assert all(run_tests(spec.program, spec.examples + spec.tests))   # the reference passes
        assert len({repr(out) for _, out in spec.tests}) >= 2             # not a constant
        prompt = task.prompt(spec)
        assert len(prompt) <= task.prompt_len and spec.description in prompt
        assert len(spec.program) + 1 <= task.program_len
        assert set(prompt + spec.program) <= set(ALPHABET)
        assert spec.key == structural_key(spec.steps) == tuple(n for n, _ in spec.steps)
    assert depths == {1, 2, 3, 4}


def test_held_out_keys_never_appear_in_training():
    task, rng = ProgramTask(), np.random.default_rng(1)
    train = {task.sample(rng).key for _ in range(600)}
    held = {task.sample(rng, held_out=True).key for _ in range(100)}
    assert not train & held
    assert all(task.is_held_out(k) for k in held) and not any(task.is_held_out(k) for k in train)
    assert all(len(k) >= 2 for k in held)
    # each held-out composition is made of primitives that training sees on their own
    assert {n for k in held for n in k} <= {n for k in train for n in k}
    # the held-out bucket is about 1/holdout_mod of the compositions
    keys = [(a, b) for a in BY_NAME for b in BY_NAME]
    frac = np.mean([task.is_held_out(k) for k in keys])
    assert 0.1 < frac < 0.3


def test_same_seed_same_specs():
    a = ProgramTask().sample(np.random.default_rng(5))
    b = ProgramTask().sample(np.random.default_rng(5))
    assert a == b


def test_injected_bug_fails_a_test_and_differs_by_one_step():
    task, rng = ProgramTask(), np.random.default_rng(2)
    found = 0
    for _ in range(60):
        spec = task.sample(rng, held_out=True)
        bug = task.inject_bug(spec, rng)
        if bug is None:
            continue
        found += 1
        buggy, (args, expected) = bug
        assert buggy != spec.program
        assert not all(run_tests(buggy, [(args, expected)]))      # the shown test fails
        assert all(run_tests(spec.program, [(args, expected)]))
        changed = [a != b for a, b in zip(buggy.split("\n"), spec.program.split("\n"))]
        assert sum(changed) == 1
        assert len(task.repair_prompt(buggy, (args, expected))) <= task.repair_prompt_len
    assert found >= 40


def test_prompts_pad_and_tokenize():
    tok = tokenizer()
    assert tok.decode(tok.encode(pad_left("sort\n", 8))) == PAD * 3 + "sort\n"
    with pytest.raises(ValueError, match="exceeds"):
        pad_left("x" * 9, 8)
    with pytest.raises(ValueError, match="max_depth"):
        ProgramTask(max_depth=5)


def test_program_tokenizer_is_compact_and_round_trips():
    task, tok, rng = ProgramTask(), tokenizer(), np.random.default_rng(3)
    lengths = []
    for _ in range(100):
        spec = task.sample(rng)
        for text in (task.prompt(spec), spec.program + EOS):
            assert tok.decode(tok.encode(text)) == text
        lengths.append(len(tok.encode(spec.program)) / len(spec.program))
        bug = task.inject_bug(spec, rng)
        if bug is not None:
            prompt = task.repair_prompt(*bug)
            assert tok.decode(tok.encode(prompt)) == prompt
    assert np.mean(lengths) < 0.2          # a program: about 8 tokens for 60+ characters
    # any text over the alphabet encodes, one character at a time where no piece fits: the
    # model is free to write invalid programs, and they are judged like any other
    odd = "def f(x):\n x=[v for v in x if v>]\n return sorted(x"
    assert tok.decode(tok.encode(odd)) == odd
    assert tok.decode(tok.encode("x" * 5)) == "xxxxx" and len(tok.encode("x" * 5)) == 5
    with pytest.raises(ValueError, match="not in the task's alphabet"):
        tok.encode("x=1.5")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
