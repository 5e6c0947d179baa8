"""The shared training plumbing: Optimizer.set_lr, Module.evaluating, non-persistent
buffers, tg.set_num_threads, minibatch_steps, summary.json and loss curves, and the config
checks of tinygen.cli."""

import dataclasses
import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import tinygen as tg
from tinygen import nn, optim
from tinygen.checks import at_least, between, check_fields, one_of, require
from tinygen.cli import parse_config
from tinygen.data.images import iterate_minibatches
from tinygen.data.loader import minibatch_steps
from tinygen.data.png import read_png
from tinygen.report import plot_curves, save_curves, write_summary


# ---- Optimizer.set_lr ----------------------------------------------------------------------
def test_set_lr_sets_every_group():
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    opt = optim.AdamW([{"params": [a], "weight_decay": 0.1}, {"params": [b]}], lr=1.0)
    assert opt.set_lr(0.25) is None
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]
    a.grad, b.grad = tg.ones(3), tg.ones(2)
    sgd = optim.SGD([a, b], lr=1.0)
    sgd.set_lr(0.5)
    sgd.step()  # the step uses the new rate
    np.testing.assert_allclose(a.numpy(), 0.5)


@pytest.mark.parametrize("lr", [-1e-3, float("nan")])
def test_set_lr_rejects_a_negative_or_nan_rate(lr):
    opt = optim.SGD([nn.Parameter(np.ones(2))], lr=0.1)
    with pytest.raises(ValueError, match="lr="):
        opt.set_lr(lr)
    assert opt.param_groups[0]["lr"] == 0.1


# ---- Module.evaluating ---------------------------------------------------------------------
class Net(nn.Module):
    def __init__(self):
        self.drop = nn.Dropout(0.9)
        self.head = nn.Linear(4, 4)

    def forward(self, x):
        return self.head(self.drop(x))


def test_evaluating_turns_dropout_off_and_restores_each_mode():
    net = Net()
    net.head.eval()  # a mixed state: the context must give back exactly this
    x = tg.ones(64, 4)
    with net.evaluating() as same:
        assert same is net and not net.training and not net.drop.training
        np.testing.assert_array_equal(net.drop(x).numpy(), x.numpy())  # no dropout
    assert net.training and net.drop.training and not net.head.training
    with pytest.raises(RuntimeError), net.evaluating():
        raise RuntimeError("inside")
    assert net.training and net.drop.training  # restored on an exception too


# ---- register_buffer(persistent=False) -------------------------------------------------------
class WithBuffers(nn.Module):
    def __init__(self):
        self.lin = nn.Linear(2, 2)
        self.register_buffer("running", tg.zeros(2))
        self.register_buffer("mask", tg.ones(3, 3), persistent=False)


def test_non_persistent_buffer_is_not_saved_but_moves_and_is_listed():
    m = WithBuffers()
    assert set(m.state_dict()) == {"lin.weight", "lin.bias", "running"}
    assert {name for name, _ in m.named_buffers()} == {"running", "mask"}
    assert len(m.buffers()) == 2 and len(m.parameters()) == 2
    # a checkpoint without the mask loads strictly: the mask is rebuilt, not loaded
    other = WithBuffers()
    other.mask.data[...] = 5
    other.load_state_dict(m.state_dict(), strict=True)
    assert float(other.mask.numpy()[0, 0]) == 5
    m.to("cpu")
    assert m.mask.device == "cpu"


def test_buffer_can_become_persistent_again():
    m = WithBuffers()
    m.register_buffer("mask", tg.ones(3, 3), persistent=True)
    assert "mask" in m.state_dict()


# ---- tg.set_num_threads ----------------------------------------------------------------------
def test_set_num_threads_sets_openblas_at_run_time():
    before = tg.get_num_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    try:
        assert tg.set_num_threads(1) is None
        assert tg.get_num_threads() == 1
        tg.set_num_threads(2)
        assert tg.get_num_threads() == 2
    finally:
        tg.set_num_threads(before)


@pytest.mark.parametrize("n", [0, -1, 1.5, "2", True])
def test_set_num_threads_rejects_bad_counts(n):
    with pytest.raises(ValueError, match="n="):
        tg.set_num_threads(n)


def test_openblas_kernels_names_the_set_openblas_coretype_pins():
    from tinygen.threads import openblas_kernels

    if openblas_kernels() is None or platform.machine() != "x86_64":
        pytest.skip("NumPy's BLAS is not an x86-64 OpenBLAS here")
    code = "import tinygen.threads as t; print(t.openblas_kernels()[0])"
    for core in ("Nehalem", "Sandybridge"):  # in every x86-64 DYNAMIC_ARCH build
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "OPENBLAS_CORETYPE": core}, check=True)
        assert out.stdout.split()[-1].lower() == core.lower()


# ---- minibatch_steps -------------------------------------------------------------------------
def _hand_written_loop(n, batch_size, max_steps, rng):
    """The loop minibatch_steps replaces (demos/dalle.py before it)."""
    out, it = [], 0
    while it < max_steps:
        for idx in iterate_minibatches(n, batch_size, rng, drop_last=True):
            if it == max_steps:
                break
            out.append((it, idx))
            it += 1
    return out


@pytest.mark.parametrize("n,batch_size,max_steps", [(10, 3, 7), (10, 5, 4), (12, 4, 3),
                                                     (8, 8, 5), (9, 2, 0)])
def test_minibatch_steps_matches_the_hand_written_loop(n, batch_size, max_steps):
    ours_rng, theirs_rng = np.random.default_rng(3), np.random.default_rng(3)
    ours = list(minibatch_steps(n, batch_size, max_steps, ours_rng))
    theirs = _hand_written_loop(n, batch_size, max_steps, theirs_rng)
    assert [s for s, _ in ours] == list(range(max_steps)) == [s for s, _ in theirs]
    for (_, a), (_, b) in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    # the generators are left in the same state: later draws agree too
    assert ours_rng.integers(1 << 30) == theirs_rng.integers(1 << 30)


def test_minibatch_steps_covers_each_epoch_once():
    steps = list(minibatch_steps(12, 4, 6, np.random.default_rng(0)))
    for epoch in (steps[:3], steps[3:]):
        assert sorted(np.concatenate([idx for _, idx in epoch]).tolist()) == list(range(12))


@pytest.mark.parametrize("args", [(10, 0, 5), (10, 11, 5), (10, 2, -1), (0, 1, 1)])
def test_minibatch_steps_rejects_what_would_loop_forever(args):
    with pytest.raises(ValueError, match="minibatch_steps"):
        next(minibatch_steps(*args, np.random.default_rng(0)))


# ---- summary.json and loss curves ------------------------------------------------------------
def test_write_summary_writes_and_prints_one_line(tmp_path, capsys):
    path = write_summary(tmp_path, {"loss": 1.5, "name": "x"})
    with open(path) as f:
        assert json.load(f) == {"loss": 1.5, "name": "x"}
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0]) == {"loss": 1.5, "name": "x"}


def test_save_curves_writes_a_png_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    path = save_curves(tmp_path / "loss.png", {"train": [3.0, 2.0, float("nan"), 1.0],
                                               "val": ([0, 3], [3.2, 1.4])})
    image = read_png(path)
    assert image.shape == (360, 640, 3)
    blue, orange = np.array([31, 119, 180]), np.array([255, 127, 14])
    assert (image == blue).all(-1).sum() > 50 and (image == orange).all(-1).sum() > 50


def test_plot_curves_puts_the_lowest_value_at_the_bottom():
    image = plot_curves([(np.array([0.0, 1.0]), np.array([1.0, 0.0]))])
    blue = (image == np.array([31, 119, 180])).all(-1)
    rows, cols = np.nonzero(blue)
    assert rows[cols.argmin()] < rows[cols.argmax()]  # falls from left to right
    plot_curves([])                                   # nothing to draw is still a picture
    plot_curves([(np.array([2.0]), np.array([5.0]))])  # one point


def test_save_curves_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    path = save_curves(tmp_path / "loss.png", {"train": [3.0, 2.0, 1.0]})
    assert read_png(path).ndim == 3


def test_save_curves_rejects_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match="x values"):
        save_curves(tmp_path / "x.png", {"a": ([0, 1, 2], [1.0, 2.0])})


# ---- config checks ---------------------------------------------------------------------------
@dataclasses.dataclass
class Config:
    kind: str = one_of("a", "b")
    size: int = at_least(4, 1)
    p: float = between(0.5, 0.0, 1.0)
    heads: int = at_least(2, 1)
    later: int = at_least(None, 1)  # None: filled in later
    smoke: bool = False

    def __post_init__(self):
        check_fields(self)
        require(self.size % self.heads == 0, "heads", self.heads,
                f"must divide size={self.size}")


@pytest.mark.parametrize("kwargs,message", [
    ({"kind": "c"}, "kind=c: must be one of 'a', 'b'"),
    ({"size": 0}, "size=0: must be >= 1"),
    ({"p": 1.5}, "p=1.5: must lie in [0.0, 1.0]"),
    ({"p": float("nan")}, "p=nan: must lie in"),
    ({"heads": 3}, "heads=3: must divide size=4"),
    ({"later": 0}, "later=0: must be >= 1"),
])
def test_check_fields_names_field_value_and_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError) as e:
        Config(**kwargs)
    assert str(e.value).startswith(message)


def test_parse_config_exits_with_one_line(capsys):
    assert parse_config(Config, argv=["--size", "8"]).size == 8
    assert Config(later=None).later is None
    for argv, flag in [(["--size", "0"], "--size=0: must be >= 1"),
                       (["--heads", "3"], "--heads=3: must divide size=4"),
                       (["--kind", "z"], "invalid choice: 'z'"),
                       (["--size", "x"], "invalid int value: 'x'"),
                       (["--nope"], "unrecognized arguments: --nope")]:
        with pytest.raises(SystemExit) as e:
            parse_config(Config, argv=argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and flag in err, err


def test_parse_config_applies_smoke_before_checking(capsys):
    assert parse_config(Config, argv=["--smoke"], smoke={"size": 6, "heads": 3}).size == 6
    with pytest.raises(SystemExit):
        parse_config(Config, argv=["--smoke"], smoke={"size": 7})
    assert "--heads=2: must divide size=7" in capsys.readouterr().err


def test_a_flag_given_with_smoke_wins_over_the_smoke_value():
    cfg = parse_config(Config, argv=["--smoke", "--size", "9"], smoke={"size": 6, "heads": 3})
    assert (cfg.size, cfg.heads) == (9, 3)  # --size given explicitly; heads from smoke
    assert parse_config(Config, argv=["--size", "8"], smoke={"size": 6, "heads": 3}).heads == 2
