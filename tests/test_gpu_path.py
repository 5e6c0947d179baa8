"""The GPU path on the CuPy emulator (tests/cupy_emulator.py) or real CuPy: the emulator is
strict, devices never change silently, index errors surface without a sync inside a step."""

import numpy as np
import pytest
from conftest import EMULATED_CUDA

import tinygen as tg
import tinygen.nn.functional as F
from tinygen import backend

needs_emulator = pytest.mark.skipif(not EMULATED_CUDA, reason="runs on the CuPy emulator")


@needs_emulator
def test_the_emulator_is_strict():
    cp = backend.cp
    a = cp.asarray(np.arange(6.0).reshape(2, 3))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3)
    assert isinstance(a.sum(), cp.ndarray) and a.sum().shape == ()   # 0-d, not a scalar
    assert float(a[cp.asarray([5])][0, 0]) == 3.0                     # wraps: 5 % 2 == 1
    assert not hasattr(cp.random.default_rng(0), "permutation")
    assert not hasattr(cp, "float128") and not hasattr(a, "itemset")
    with pytest.raises(NotImplementedError):
        cp.multiply.reduceat(a, [0])
    cp.COUNTS.reset()
    b = (a * 2).sum()
    assert cp.COUNTS.launches == 2 and cp.COUNTS.syncs == 0
    b.item()
    assert cp.COUNTS.syncs == 1


def test_tensor_of_a_device_array_stays_there(device):
    x = tg.randn(3, device=device)
    assert tg.tensor(x.data).device == device
    assert tg.tensor([1.0, 2.0]).device == "cpu"


def test_backward_moves_a_numpy_grad(device):
    x = tg.randn(3, device=device, requires_grad=True)
    (x * 2).backward(np.ones(3, dtype=np.float32))
    np.testing.assert_allclose(x.grad.numpy(), 2.0)


@pytest.mark.parametrize("op", ["embedding", "cross_entropy", "getitem"])
def test_out_of_range_indices_raise_on_every_device(device, op):
    w = tg.randn(4, 3, device=device, requires_grad=True)
    idx = tg.tensor(np.array([0, 4]), device=device)     # 4 is out of range for 4 rows

    def run():
        if op == "embedding":
            return F.embedding(idx, w).sum()
        if op == "cross_entropy":
            return F.cross_entropy(w, tg.tensor(np.array([0, 1, 2, 3]) + 1, device=device))
        return w[idx].sum()
    with pytest.raises(IndexError):
        run().item()           # on the GPU: at the sync, which is where a log line reads it
    backend._pending.update(flag=None, ops=[])


def test_ignore_index_is_not_out_of_range(device):
    logits = tg.randn(3, 5, device=device)
    loss = F.cross_entropy(logits, tg.tensor(np.array([1, -100, 4]), device=device))
    assert np.isfinite(loss.item())


@needs_emulator
def test_host_state_on_a_device_model_is_refused():
    x = tg.randn(4, 2, device="cuda")
    with pytest.raises(RuntimeError, match="running_mean"):
        F.batch_norm(x, tg.zeros(2), tg.ones(2, device="cuda"), training=True)
    q = tg.randn(1, 3, 2, device="cuda")
    with pytest.raises(RuntimeError, match="attn_mask"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), dtype=bool))


@needs_emulator
def test_bounds_checks_do_not_sync():
    cp = backend.cp
    w = tg.randn(10, 3, device="cuda", requires_grad=True)
    idx = tg.tensor(np.array([[1, 2], [3, 9]]), device="cuda")
    cp.COUNTS.reset()
    loss = F.cross_entropy(F.embedding(idx, w).reshape(4, 3) @ w.T, idx.reshape(-1))
    loss.backward()
    assert cp.COUNTS.syncs == 0
    loss.item()
    assert cp.COUNTS.syncs == 2          # the queued bounds flag and the loss: one log point


def test_counter_rng_is_the_same_on_every_array_module(device):
    from tinygen.backend import module_for
    from tinygen.random import CounterRNG

    a, b = CounterRNG(7, np), CounterRNG(7, module_for(device))
    for draw in ("random", "standard_normal"):
        x, y = getattr(a, draw)((50,), dtype=np.float32), getattr(b, draw)((50,),
                                                                       dtype=np.float32)
        np.testing.assert_array_equal(x, backend.to_numpy(y))
    u = backend.to_numpy(b.random(20000))
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    z = backend.to_numpy(b.standard_normal(20000))
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03


def test_dropout_keeps_one_minus_p_and_rescales(device):
    tg.manual_seed(0)
    y = F.dropout(tg.ones(200, 100, device=device), p=0.3).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((y > 0).mean() - 0.7) < 0.01


def test_resumed_run_continues_exactly(device, tmp_path):
    from tinygen import nn, optim
    from tinygen.checkpoint import load_checkpoint, save_checkpoint

    def build():
        tg.manual_seed(3)
        model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1)).to(device)
        return model, optim.AdamW(model.parameters(), lr=1e-2)

    def step(model, opt):
        x = tg.randn(16, 4, device=device)
        loss = (model(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    model, opt = build()
    for _ in range(2):
        step(model, opt)
    save_checkpoint(tmp_path / "c.safetensors", model, opt, step=2)
    want = [step(model, opt) for _ in range(3)]
    model, opt = build()
    tg.randn(5, device=device)                    # disturb the generators before loading
    load_checkpoint(tmp_path / "c.safetensors", model, opt, device=device)
    assert [step(model, opt) for _ in range(3)] == want


def test_classifier_trains_and_predicts_on_the_device(device):
    from tinygen.models.classifier import predict_proba, train_classifier

    rng = np.random.default_rng(0)
    images = rng.random((40, 1, 8, 8)).astype(np.float32)
    labels = (images.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64)
    model = train_classifier(images, labels, n_classes=2, epochs=1, batch_size=20, log=None,
                             width=4, device=device)
    assert next(iter(model.parameters())).device == device
    probs = predict_proba(model, images)
    assert isinstance(probs, tg.Tensor) and probs.shape == (40, 2)  # on the CPU: a Tensor
    np.testing.assert_allclose(probs.numpy().sum(-1), 1, rtol=1e-5)


@needs_emulator
def test_clip_grad_norm_stays_on_the_device():
    from tinygen import optim

    w = tg.randn(5, 3, device="cuda", requires_grad=True)
    (w * 10).sum().backward()
    backend.cp.COUNTS.reset()
    norm = optim.clip_grad_norm_([w], 1.0)
    assert backend.cp.COUNTS.syncs == 0
    assert norm.item() == pytest.approx(10 * np.sqrt(15), rel=1e-5)
    assert np.sqrt((w.grad.numpy() ** 2).sum()) == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("make", [lambda ps: __import__("tinygen").optim.SGD(ps, 0.1, 0.9),
                                  lambda ps: __import__("tinygen").optim.AdamW(ps, 1e-2)],
                         ids=["sgd", "adamw"])
def test_flat_buffers_step_like_the_per_parameter_loop(device, make):
    from tinygen import nn

    def run(flat):
        tg.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2)).to(device)
        opt = make(list(model.parameters()))
        if not flat:
            opt.flat_buffers = []
        for i in range(3):
            if i == 2:   # a re-assigned parameter leaves its buffer: rebuilt, nothing lost
                model[0].weight.data = model[0].weight.data.copy()
            loss = (model(tg.randn(4, 3, device=device)) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return [p.numpy() for p in model.parameters()], opt
    (flat_params, opt), (loop_params, _) = run(True), run(False)
    assert len(opt.flat_buffers) == 1 and opt.flat_buffers[0].intact()
    for a, b in zip(flat_params, loop_params):
        np.testing.assert_array_equal(a, b)
    sd = opt.state_dict()
    assert all(v.shape == p.shape for p, s in zip(opt._params(), sd["state"].values())
               for v in s.values() if hasattr(v, "shape"))
