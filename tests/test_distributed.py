"""tinygen.distributed: collectives, DDP, gradient accumulation, ZeRO-1, checkpoints across
world sizes, and failure handling — two processes under mpiexec on the CPU (issue #16).
Skips when mpi4py or mpiexec is missing (pip install tinygen[distributed])."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygen as tg
import tinygen.distributed as dist
from tinygen import optim

HERE = Path(__file__).parent / "distributed"
ROOT = str(Path(__file__).parents[1])
TIMEOUT = 180  # seconds for one mpiexec job; a hang fails the test instead of CI


def _launch(n, script, *args, check=True):
    pytest.importorskip("mpi4py")
    from tinygen.distributed.launch import find_mpiexec, mpiexec_command

    if find_mpiexec() is None:
        pytest.skip("mpiexec not installed")
    argv = [sys.executable, str(HERE / script), *map(str, args)]
    if n > 1:
        cmd, env = mpiexec_command(n, argv)
    else:  # one process, no launcher: the group of one that needs no MPI
        cmd, env = argv, {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                         check=False)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}):\n"
                             f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def _train(tmp_path, name, n, *args):
    path = tmp_path / f"{name}.npz"
    _launch(n, "train_worker.py", "--out", path, *args)
    return dict(np.load(path))


def _assert_same_run(a, b, losses=slice(None)):
    np.testing.assert_allclose(a["losses"][losses], b["losses"], rtol=1e-5, atol=1e-6)
    names = [k for k in a if k not in ("losses", "state_bytes", "overlapped")]
    assert len(names) > 10
    for k in names:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=2e-5, err_msg=k)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process, the whole batch of 8, five AdamW steps."""
    return _train(tmp_path_factory.mktemp("ref"), "ref", 1)


# ---- in one process --------------------------------------------------------------------

def test_collective_before_init_raises():
    dist.destroy_process_group()
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.all_reduce(tg.ones(2))
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.get_rank()


def test_group_of_one_needs_no_launcher():
    dist.destroy_process_group()
    try:
        g = dist.init_process_group()
        assert (dist.get_rank(), dist.get_world_size(), g.comm) == (0, 1, None)
        t = tg.tensor([1.0, 2.0])
        dist.all_reduce(t, dist.ReduceOp.AVG)
        dist.broadcast(t)
        out = tg.zeros(2)
        dist.all_gather_into_tensor(out, t)
        assert t.numpy().tolist() == out.numpy().tolist() == [1.0, 2.0]
        with pytest.raises(ValueError, match="op must be"):
            dist.all_reduce(t, "mean")
        with pytest.raises(ValueError, match="split evenly"):
            dist.local_batch(np.zeros((5, 2)), 0, 2)
        assert dist.local_batch(np.arange(8), 1, 2).tolist() == [4, 5, 6, 7]
    finally:
        dist.destroy_process_group()


def test_zero1_packs_each_ranks_shards_of_every_parameter_into_one_row():
    """ZeRO-1's packing for N = 3 ranks without MPI: row r of the packed buffer holds, for
    every parameter, exactly the shard a per-parameter reduce-scatter gives rank r (its
    flattened gradient zero-padded to N * s, block r); unpacking the rows is the inverse."""
    from tinygen.distributed.zero import _Packing, _read_rows, _Shard

    N, sizes = 3, [(1,), (2,), (5,), (7,), (3, 4), (2, 3, 3)]
    params = [tg.nn.Parameter(tg.tensor(np.zeros(s, np.float32))) for s in sizes]
    rng = np.random.default_rng(0)
    for p in params[1:]:                             # the first one has no gradient
        p.grad = tg.tensor(rng.standard_normal(p.shape).astype(np.float32))
    for r in range(N):
        packing = _Packing([_Shard(p, r, N) for p in params], N)
        row = packing.pack()[r]
        for p, (sh, part) in zip(params, packing.mine(row)):
            padded = np.zeros(N * sh.s, np.float32)
            if p.grad is not None:
                padded[:p.data.size] = p.grad.numpy().reshape(-1)
            assert part.tolist() == padded[r * sh.s:r * sh.s + sh.hi - sh.lo].tolist()
        for p, (sh, block) in zip(params, packing.blocks(packing.pack())):
            back = np.full(p.data.size, np.nan, np.float32)
            _read_rows(back, block)
            want = p.grad.numpy().reshape(-1) if p.grad is not None else np.zeros(p.data.size)
            assert back.tolist() == want.tolist()


def test_zero1_buckets_hold_one_dtype_and_at_most_the_cap():
    from tinygen.distributed.zero import _packings, _Shard

    shapes = [(10,), (30,), (3,), (100,), (4,), (4,)]
    dtypes = [np.float32] * 4 + [np.float64, np.float32]
    params = [tg.nn.Parameter(tg.tensor(np.zeros(s, d))) for s, d in zip(shapes, dtypes)]
    # packed bytes at N = 2: 2 * ceil(n / 2) * itemsize = 40, 120, 16, 400, 32, 16
    packings = _packings([_Shard(p, 0, 2) for p in params], 2, cap_bytes=150)
    sizes = [[sh.param.data.size for sh in pk.shards] for pk in packings]
    # in order; 40 + 120 > 150; 400 alone exceeds the cap; a change of dtype starts anew
    assert sizes == [[10], [30, 3], [100], [4], [4]]
    assert [pk.dtype for pk in packings] == [np.float32] * 3 + [np.float64, np.float32]


def test_zero1_step_is_one_collective_each_way(monkeypatch):
    """One reduce-scatter and one all-gather per step for the whole model (per dtype), not
    one per parameter; the step still equals the plain optimizer's."""
    from tinygen.distributed import zero

    calls = []
    for name in ("reduce_scatter_tensor", "all_gather_into_tensor"):
        f = getattr(zero, name)
        monkeypatch.setattr(zero, name, lambda *a, _f=f, _n=name, **k: (calls.append(_n),
                                                                          _f(*a, **k))[1])
    dist.destroy_process_group()
    try:
        dist.init_process_group()
        models = []
        for _ in range(2):
            tg.manual_seed(0)
            models.append(tg.nn.Sequential(tg.nn.Linear(4, 8), tg.nn.ReLU(), tg.nn.Linear(8, 3)))
        plain = optim.AdamW(models[0].parameters(), lr=0.1)
        sharded = dist.ZeroRedundancyOptimizer(models[1].parameters(), optim.AdamW, lr=0.1)
        x = tg.tensor(np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32))
        for model, opt in zip(models, (plain, sharded)):
            for _ in range(2):
                opt.zero_grad()
                (model(x) ** 2).sum().backward()
                opt.step()
        assert calls == ["reduce_scatter_tensor", "all_gather_into_tensor"] * 2
        for a, b in zip(models[0].parameters(), models[1].parameters()):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    finally:
        dist.destroy_process_group()


def test_launcher_environment():
    assert dist.launcher_world_size({}) == 1
    assert dist.launcher_world_size({"PMI_SIZE": "4", "PMI_RANK": "2"}) == 4
    assert dist.launcher_world_size({"OMPI_COMM_WORLD_SIZE": "3"}) == 3
    assert dist.launcher_world_size({"SLURM_NTASKS": "8", "SLURM_PROCID": "1"}) == 8
    env = dist.launcher_env({"SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "4",
                             "SLURM_PROCID": "3", "SLURM_LOCALID": "1"})
    assert (env["launcher"], env["world_size"], env["rank"], env["local_rank"]) == (
        "srun (Slurm)", 4, 3, 1)  # the step's tasks, not the allocation's
    # mpiexec inside an sbatch allocation: MPI's variables win over the inherited SLURM_*
    env = dist.launcher_env({"SLURM_NTASKS": "8", "SLURM_PROCID": "0", "PMI_SIZE": "2",
                             "PMI_RANK": "1", "MPI_LOCALRANKID": "1"})
    assert (env["world_size"], env["rank"], env["local_rank"]) == (2, 1, 1)
    env = dist.launcher_env({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1",
                             "OMPI_COMM_WORLD_LOCAL_RANK": "0"})
    assert (env["world_size"], env["rank"], env["local_rank"]) == (2, 1, 0)
    assert dist.launcher_env({"SLURM_NTASKS": "", "PMI_SIZE": "x"}) is None


def _init_under(environ):
    """init_process_group() in a fresh process with a made-up launcher environment."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("PMI", "MPI_", "OMPI_", "SLURM_", "HYDRA"))}
    code = ("import tinygen.distributed as dist; g = dist.init_process_group(); "
            "print(g.rank, g.world_size, g.local_rank, g.comm is None)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False,
                          env={**keep, **environ, "PYTHONPATH": ROOT})


def test_slurm_environment_without_slurm():
    # srun with one task: a group of one, MPI never imported
    out = _init_under({"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"})
    assert out.returncode == 0 and out.stdout.split() == ["0", "1", "0", "True"], out.stderr
    # srun announced 2 tasks, but this MPI sees a world of one (an srun whose MPI is not
    # Slurm's, or python alone in an sbatch script): a clear error, not a silent solo run
    pytest.importorskip("mpi4py")
    out = _init_under({"SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_LOCALID": "1"})
    assert out.returncode != 0
    assert "srun (Slurm) announced rank 1 of 2 (SLURM_PROCID, SLURM_NTASKS)" in out.stderr
    assert "MPI sees rank 0 of 1" in out.stderr and "--mpi=pmix" in out.stderr


def test_post_accumulate_grad_hook_fires_once_per_leaf_per_backward():
    from tinygen import nn, optim

    w = tg.tensor([1.0, 2.0], requires_grad=True)   # used three times in one graph
    lin = nn.Linear(2, 2)
    optim.AdamW(lin.parameters(), lr=0.1)           # its parameters now live in flat buffers
    seen = []
    handles = [t.register_post_accumulate_grad_hook(
        lambda t, name=name: seen.append((name, t.grad.numpy().copy())))
        for name, t in [("w", w), ("weight", lin.weight), ("bias", lin.bias)]]
    for _ in range(2):
        (lin(w * w + w).sum() + (w * 3).sum()).backward()
    assert [name for name, _ in seen].count("w") == 2
    assert sorted(name for name, _ in seen) == ["bias"] * 2 + ["w"] * 2 + ["weight"] * 2
    ws = [g for name, g in seen if name == "w"]
    np.testing.assert_allclose(ws[1], w.grad.numpy())      # final: both backwards summed
    np.testing.assert_allclose(ws[1], 2 * ws[0])          # the first hook saw all 3 uses
    for h in handles:
        h.remove()
    (w * 1).sum().backward()
    assert len(seen) == 6
    with pytest.raises(RuntimeError, match="only leaf"):
        (w * 2).register_post_accumulate_grad_hook(print)


# ---- two processes under mpiexec --------------------------------------------------------

def test_collectives_two_ranks():
    out = _launch(2, "collectives_worker.py")
    assert "ok 0" in out.stdout and "ok 1" in out.stdout


def test_ddp_two_halves_equal_one_whole(tmp_path, reference):
    ddp = _train(tmp_path, "ddp", 2)
    _assert_same_run(reference, ddp)
    assert ddp["overlapped"] > 0  # buckets started from the gradient hooks, inside backward
    # buckets that are slices of the optimizer's flat gradient buffers (no copies)
    _assert_same_run(reference, _train(tmp_path, "flat", 2, "--optimizer_first"))
    _assert_same_run(reference, _train(tmp_path, "flat_accum", 2, "--optimizer_first",
                                       "--grad_accum", 2))


def test_grad_accumulation_four_quarters_equal_one_whole(tmp_path, reference):
    _assert_same_run(reference, _train(tmp_path, "accum", 1, "--grad_accum", 4))
    _assert_same_run(reference, _train(tmp_path, "accum2", 2, "--grad_accum", 2))


def test_zero1_equals_ddp_and_halves_optimizer_state(tmp_path, reference):
    zero = _train(tmp_path, "zero", 2, "--zero1")
    _assert_same_run(reference, zero)
    one = _train(tmp_path, "zero1", 1, "--zero1")
    # Adam's moments: 8 bytes per parameter in one process, about half on each of two ranks
    assert abs(zero["state_bytes"] / one["state_bytes"] - 0.5) < 0.01


def test_checkpoint_from_two_ranks_resumes_in_one(tmp_path, reference):
    for zero in ([], ["--zero1"]):
        ckpt = tmp_path / f"ckpt{len(zero)}.safetensors"
        _train(tmp_path, "first", 2, "--save_at", 3, "--ckpt", ckpt, *zero)
        resumed = _train(tmp_path, "resumed", 1, "--resume", "--ckpt", ckpt, *zero)
        _assert_same_run(reference, resumed, losses=slice(3, None))


def test_failing_rank_ends_every_rank(tmp_path):
    out = _launch(2, "train_worker.py", "--out", tmp_path / "x.npz", "--fail_rank", 1,
                  check=False)
    assert out.returncode != 0
    assert "rank 1 of 2 failed with RuntimeError: a deliberate failure" in out.stderr
    assert not (tmp_path / "x.npz").exists()


def test_gpt_demo_under_mpiexec_matches_one_process(tmp_path):
    import json

    common = ["--smoke", "--text", "/work/shared/data/tinyshakespeare.txt"]
    if not Path(common[2]).exists():
        common = ["--smoke"]
    demo = Path(ROOT) / "demos" / "gpt.py"
    runs = {}
    for n, extra in ((1, []), (2, ["--zero1", "--grad_accum", "2"])):
        out_dir = tmp_path / f"n{n}"
        argv = [sys.executable, str(demo), *common, "--out_dir", str(out_dir), *extra]
        pytest.importorskip("mpi4py")
        from tinygen.distributed.launch import find_mpiexec, mpiexec_command

        if find_mpiexec() is None:
            pytest.skip("mpiexec not installed")
        cmd, env = mpiexec_command(n, argv)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                             check=False)
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.count('"val_loss"') == 1  # rank 0 alone prints the summary
        runs[n] = json.loads((out_dir / "summary.json").read_text())
    assert runs[2]["world_size"] == 2
    assert abs(runs[1]["val_loss"] - runs[2]["val_loss"]) < 1e-3
