"""nn.Module (the attribute walk, state_dict, modes, devices), the basic layers and init
(parity with PyTorch: test_nn_torch_parity.py)."""

import math

import numpy as np
import pytest

import tinygen as tg
import tinygen.nn.functional as F
from tinygen import nn
from tinygen.nn import init


# ---- a small GPT-shaped model: nesting, ModuleList, ModuleDict, Sequential, tying ---------
class Block(nn.Module):
    def __init__(self, n_embd):
        self.ln_1 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(),
                                 nn.Linear(4 * n_embd, n_embd), nn.Dropout(0.5))

    def forward(self, x):
        return x + self.mlp(self.ln_1(x))


class TinyGPT(nn.Module):
    def __init__(self, vocab_size=7, n_embd=4, n_layer=2):
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(vocab_size, n_embd),
            "h": nn.ModuleList([Block(n_embd) for _ in range(n_layer)]),
            "ln_f": nn.LayerNorm(n_embd),
        })
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying (nanoGPT)
        self.register_buffer("bias_mask", tg.ones(3, 3))

    def forward(self, idx):
        x = self.transformer.wte(idx)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


BLOCK_KEYS = ["ln_1.weight", "ln_1.bias", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight",
              "mlp.2.bias"]
PARAM_NAMES = (["transformer.wte.weight"]
               + [f"transformer.h.{i}.{k}" for i in range(2) for k in BLOCK_KEYS]
               + ["transformer.ln_f.weight", "transformer.ln_f.bias"])


def test_named_parameters_dotted_names_in_order():
    model = TinyGPT()
    assert [name for name, _ in model.named_parameters()] == PARAM_NAMES
    assert len(model.parameters()) == len(PARAM_NAMES)
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in model.parameters())


def test_parameters_order_follows_attribute_order():
    class M(nn.Module):
        def __init__(self):
            self.b = nn.Parameter(np.zeros(1))
            self.a = nn.Parameter(np.zeros(2))
            self.child = nn.Linear(2, 3)
            self.c = nn.Parameter(np.zeros(3))

    m = M()
    assert [n for n, _ in m.named_parameters()] == ["b", "a", "child.weight", "child.bias", "c"]
    assert [p.shape for p in m.parameters()] == [(1,), (2,), (3, 2), (3,), (3,)]


def test_shared_parameter_listed_once_but_saved_under_both_names():
    model = TinyGPT()
    params = model.parameters()
    assert len({id(p) for p in params}) == len(params)
    assert sum(p is model.lm_head.weight for p in params) == 1
    sd = model.state_dict()
    assert "lm_head.weight" in sd and "transformer.wte.weight" in sd
    np.testing.assert_array_equal(sd["lm_head.weight"].numpy(),
                                  sd["transformer.wte.weight"].numpy())
    assert model.num_parameters() == sum(p.numel() for p in params)


def test_state_dict_keys_and_buffers():
    model = TinyGPT()
    sd = model.state_dict()
    assert set(sd) == set(PARAM_NAMES) | {"lm_head.weight", "bias_mask"}
    assert all(not t.requires_grad for t in sd.values())  # detached
    assert "bias_mask" not in dict(model.named_parameters())
    assert all(p is not model.bias_mask for p in model.parameters())


def test_sequential_and_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU) and seq[-1] is seq[2]
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                       "2.bias"]
    assert seq(tg.randn(5, 2)).shape == (5, 1)
    ml = nn.ModuleList([nn.Linear(1, 1)]).append(nn.Linear(1, 2))
    assert len(ml) == 2 and [m.out_features for m in ml] == [1, 2]
    md = nn.ModuleDict({"enc": nn.Linear(1, 1), "dec": nn.Linear(1, 1)})
    assert md.keys() == ["enc", "dec"] and "enc" in md and "nope" not in md
    assert [n for n, _ in md.named_parameters()] == ["enc.weight", "enc.bias", "dec.weight",
                                                      "dec.bias"]
    names = [n for n, _ in TinyGPT().named_modules()]
    assert names[:3] == ["", "transformer", "transformer.wte"]
    assert "transformer.h.1.mlp.3" in names


def test_load_state_dict_round_trip_in_place():
    tg.manual_seed(0)
    src = TinyGPT()
    tg.manual_seed(1)
    dst = TinyGPT()
    before = {n: p for n, p in dst.named_parameters()}
    data_before = {n: p.data for n, p in dst.named_parameters()}
    missing, unexpected = dst.load_state_dict(src.state_dict())
    assert missing == [] and unexpected == []
    for (n, p), (_, q) in zip(dst.named_parameters(), src.named_parameters()):
        assert p is before[n] and p.data is data_before[n]  # copied into, not replaced
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    assert dst.lm_head.weight is dst.transformer.wte.weight  # still tied
    idx = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(dst.eval()(idx).numpy(), src.eval()(idx).numpy())


def test_load_state_dict_through_a_checkpoint_file(tmp_path):
    src, dst = TinyGPT(), TinyGPT()
    tg.save(src.state_dict(), tmp_path / "model.safetensors")
    dst.load_state_dict(tg.load(tmp_path / "model.safetensors"))
    for p, q in zip(dst.parameters(), src.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_load_state_dict_strict_reports_every_problem_at_once():
    model = TinyGPT()
    sd = dict(model.state_dict())
    del sd["transformer.ln_f.bias"]
    sd["transformer.h.5.ln_1.weight"] = tg.zeros(4)
    sd["transformer.h.0.mlp.0.bias"] = tg.zeros(3)  # should be (16,)
    with pytest.raises(KeyError) as e:
        model.load_state_dict(sd)
    msg = str(e.value)
    assert "missing" in msg and "transformer.ln_f.bias" in msg
    assert "unexpected" in msg and "transformer.h.5.ln_1.weight" in msg
    assert "transformer.h.0.mlp.0.bias" in msg and "(3,)" in msg and "(16,)" in msg


def test_load_state_dict_non_strict_loads_what_matches():
    model = TinyGPT()
    sd = {"transformer.ln_f.weight": tg.full(4, 2.0), "extra.weight": tg.zeros(1)}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert unexpected == ["extra.weight"]
    assert set(missing) == set(model.state_dict()) - {"transformer.ln_f.weight"}
    np.testing.assert_array_equal(model.transformer.ln_f.weight.numpy(), 2.0)
    sd = {"transformer.ln_f.weight": tg.zeros(5)}  # a wrong shape is an error even so
    with pytest.raises(KeyError, match="transformer.ln_f.weight"):
        model.load_state_dict(sd, strict=False)


def test_load_state_dict_accepts_numpy_and_keeps_dtype():
    lin = nn.Linear(2, 2)
    lin.load_state_dict({"weight": np.eye(2), "bias": np.zeros(2)})  # float64 arrays
    assert lin.weight.dtype == np.float32
    np.testing.assert_array_equal(lin.weight.numpy(), np.eye(2))


def test_register_buffer_is_state_not_parameter():
    class Norm(nn.Module):
        def __init__(self):
            self.weight = nn.Parameter(np.ones(3, np.float32))
            self.register_buffer("running_mean", tg.zeros(3))

    m = nn.Sequential(Norm())
    assert [n for n, _ in m.named_parameters()] == ["0.weight"]
    assert list(m.state_dict()) == ["0.weight", "0.running_mean"]
    m.load_state_dict({"0.weight": np.ones(3), "0.running_mean": np.arange(3.0)})
    np.testing.assert_array_equal(m[0].running_mean.numpy(), [0, 1, 2])


def test_train_eval_propagate_to_children():
    model = TinyGPT()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    x = tg.ones(4, 50)
    drop = model.transformer.h[0].mlp[3]
    np.testing.assert_array_equal(drop(x).numpy(), 1.0)  # identity in eval
    model.train()
    assert all(m.training for m in model.modules())
    out = drop(x).numpy()
    assert set(np.unique(out)) == {0.0, 2.0}  # dropped, and kept ones scaled by 1/(1-p)


def test_zero_grad():
    model = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1))
    model(tg.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_to_keeps_parameter_identity(device):
    model = TinyGPT()
    params = model.parameters()
    values = [p.numpy().copy() for p in params]
    model(np.array([[1, 2]])).sum().backward()
    assert model.to(device) is model
    assert all(p is q for p, q in zip(model.parameters(), params))
    assert all(p.device == device and p.grad.device == device for p in params)
    assert model.bias_mask.device == device
    for p, v in zip(params, values):
        np.testing.assert_array_equal(p.numpy(), v)
    model.to("cpu")
    assert all(p.device == "cpu" for p in model.parameters())


def test_repr():
    text = repr(TinyGPT())
    assert text.startswith("TinyGPT(")
    assert "(wte): Embedding(7, 4)" in text
    assert "(0): Linear(4, 16, bias=True)" in text
    assert "LayerNorm((4,), eps=1e-05, elementwise_affine=True)" in text and "Dropout(p=0.5)" in text
    assert repr(nn.Linear(2, 3, bias=False)) == "Linear(2, 3, bias=False)"
    assert "Parameter containing" in repr(nn.Parameter(np.zeros(2)))


def test_forward_not_defined():
    with pytest.raises(NotImplementedError, match="Module"):
        nn.Module()(1)


# ---- layers -----------------------------------------------------------------------------
def test_linear_shapes_and_init():
    tg.manual_seed(0)
    lin = nn.Linear(64, 32)
    assert lin.weight.shape == (32, 64) and lin.bias.shape == (32,)
    assert lin.weight.dtype == np.float32
    bound = 1 / math.sqrt(64)  # PyTorch: kaiming_uniform_(a=√5) = U(±1/√in); bias U(±1/√in)
    for p in (lin.weight, lin.bias):
        assert np.abs(p.numpy()).max() <= bound
    assert np.abs(lin.weight.numpy()).max() > 0.9 * bound  # the whole range is used
    assert abs(lin.weight.numpy().std() - bound / math.sqrt(3)) < 0.1 * bound
    assert lin(tg.randn(5, 64)).shape == (5, 32)
    assert lin(tg.randn(2, 3, 64)).shape == (2, 3, 32)
    assert nn.Linear(3, 2, bias=False).bias is None
    assert len(nn.Linear(3, 2, bias=False).parameters()) == 1


def test_embedding_shapes_and_init():
    tg.manual_seed(0)
    emb = nn.Embedding(100, 50)
    w = emb.weight.numpy()
    assert w.shape == (100, 50) and w.dtype == np.float32
    assert abs(w.mean()) < 0.05 and abs(w.std() - 1) < 0.05  # N(0, 1), as PyTorch
    out = emb(np.array([[3, 3, 99]]))
    assert out.shape == (1, 3, 50)
    np.testing.assert_array_equal(out.numpy()[0, 2], w[99])


def test_layer_norm_layer():
    ln = nn.LayerNorm(6)
    np.testing.assert_array_equal(ln.weight.numpy(), 1)
    np.testing.assert_array_equal(ln.bias.numpy(), 0)
    out = ln(tg.randn(2, 3, 6) * 5 + 3).numpy()
    np.testing.assert_allclose(out.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(-1), 1, atol=1e-3)
    assert nn.LayerNorm(6, bias=False).bias is None
    assert nn.LayerNorm(6, bias=False)(tg.randn(2, 6)).shape == (2, 6)


def test_activation_layers():
    x = tg.tensor([-1.0, 0.5])
    np.testing.assert_allclose(nn.ReLU()(x).numpy(), [0, 0.5])
    np.testing.assert_allclose(nn.Tanh()(x).numpy(), np.tanh([-1, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(nn.Sigmoid()(x).numpy(), 1 / (1 + np.exp([1, -0.5])), rtol=1e-6)
    np.testing.assert_allclose(nn.GELU()(x).numpy(), F.gelu(x).numpy())


# ---- init ---------------------------------------------------------------------------------
def _param(*shape):
    return nn.Parameter(np.zeros(shape, np.float32))


def test_init_helpers_statistics():
    tg.manual_seed(0)
    t = init.normal_(_param(200, 100), mean=1.0, std=0.02).numpy()
    assert abs(t.mean() - 1.0) < 0.001 and abs(t.std() - 0.02) < 0.001
    t = init.uniform_(_param(200, 100), -2.0, 3.0).numpy()
    assert t.min() >= -2 and t.max() < 3 and abs(t.mean() - 0.5) < 0.05
    assert abs(t.std() - 5 / math.sqrt(12)) < 0.02
    np.testing.assert_array_equal(init.zeros_(init.ones_(_param(3, 2))).numpy(), 0)
    np.testing.assert_array_equal(init.ones_(_param(3, 2)).numpy(), 1)
    np.testing.assert_array_equal(init.constant_(_param(2), 0.5).numpy(), 0.5)
    fan_in, fan_out = 100, 200
    t = init.xavier_uniform_(_param(fan_out, fan_in)).numpy()
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(t).max() <= bound and abs(t.std() - bound / math.sqrt(3)) < 0.01 * bound * 5
    t = init.kaiming_uniform_(_param(fan_out, fan_in), a=0).numpy()  # He init for ReLU
    bound = math.sqrt(6 / fan_in)
    assert np.abs(t).max() <= bound and abs(t.std() - math.sqrt(2 / fan_in)) < 0.05 * bound
    t = init.kaiming_uniform_(_param(8, 4, 3, 3), a=math.sqrt(5)).numpy()
    # a conv weight: fan_in = 4*3*3
    assert np.abs(t).max() <= 1 / math.sqrt(36)
    p = _param(2, 2)
    assert init.normal_(p) is p and p.dtype == np.float32


def test_manual_seed_makes_init_reproducible():
    def weights(seed):
        tg.manual_seed(seed)
        return [p.numpy().copy() for p in TinyGPT().parameters()]

    a, b, c = weights(123), weights(123), weights(124)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, z) for x, z in zip(a, c))


def test_model_learns():
    """A tiny model overfits a tiny batch (the learning test the style guide asks for)."""
    from tinygen import optim

    tg.manual_seed(0)
    model = TinyGPT(vocab_size=5, n_embd=8, n_layer=1)
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    idx, target = np.array([[0, 1, 2, 3]]), np.array([[1, 2, 3, 4]])
    first = None
    for _ in range(60):
        loss = F.cross_entropy(model(idx), target)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first
