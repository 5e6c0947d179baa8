"""The GPU benchmark in one command: tinygen's cuda tests on real CuPy, then the GPT training
step (forward, backward, grad clip, AdamW; fp32) next to a PyTorch twin in one process.

    python benchmarks/gpu.py                       # on a machine with a GPU, CuPy and torch
    python benchmarks/gpu.py --out gpu.json --iters 30
    python benchmarks/gpu.py --emulate             # no GPU: launches and syncs per training
                                                   # step, counted on tests/cupy_emulator.py

GPU mode writes JSON: the pytest summary, and per config (nanoGPT's baby 4/4/128 at B=12,
T=64 and shakespeare-char 6/6/384 at B=64, T=256) ms/iter, tokens/s and peak device memory
for both libraries, tinygen's step once more with every CUDA kernel switched on (its ms and
first loss beside the kernels-off loss: docs/gpu_kernels.md), and tinygen's launches and
host syncs per step as counted on the emulator (the same code path; CuPy itself has no
launch counter). It has not run on a GPU yet (docs/gpu.md).
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from common import timed

CONFIGS = {
    "baby": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch": 12},
    "shakespeare-char": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256,
                         "batch": 64},
}
VOCAB = 65


def gpt_step(cfg, device, seed=0):
    """tinygen's GPT training step on `device`, the model and its batches made once."""
    import tinygen as tg
    from tinygen.models.gpt import GPT, GPTConfig

    tg.manual_seed(seed)
    args = {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "block_size")}
    model = GPT(GPTConfig(vocab_size=VOCAB, dropout=0.0, bias=True, **args)).to(device)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    rng = np.random.default_rng(seed)
    shape = (cfg["batch"], cfg["block_size"])
    x = tg.tensor(rng.integers(0, VOCAB, shape), device=device)   # uploaded once
    y = tg.tensor(rng.integers(0, VOCAB, shape), device=device)

    def step():
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        tg.optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss
    return model, step


def conv_steps(device):
    """One training step each of DCGAN, the conv VAE and CLIP (conv encoder), small batches."""
    import tinygen as tg
    from tinygen import optim
    from tinygen.models import gan
    from tinygen.models.clip import CLIP, CLIPConfig
    from tinygen.models.vae import ConvVAE, neg_elbo

    tg.manual_seed(0)
    rng = np.random.default_rng(0)
    G, D = gan.DCGANGenerator(ngf=16).to(device), gan.DCGANDiscriminator(ndf=16).to(device)
    og, od = optim.Adam(G.parameters(), 2e-4), optim.Adam(D.parameters(), 2e-4)
    real = tg.tensor(rng.random((16, 1, 28, 28)).astype(np.float32) * 2 - 1, device=device)
    vae = ConvVAE().to(device)
    ov = optim.Adam(vae.parameters(), 1e-3)
    xv = tg.tensor((rng.random((16, 1, 28, 28)) > 0.5).astype(np.float32), device=device)
    clip = CLIP(CLIPConfig()).to(device)
    oc = clip.configure_optimizers(0.1, 1e-3, (0.9, 0.98))
    images = tg.tensor(rng.random((16, 3, 32, 32)).astype(np.float32), device=device)
    ids = tg.tensor(rng.integers(0, 25, (16, 10)), device=device)
    eot = tg.tensor(np.full(16, 9), device=device).data  # CLIP takes an array

    def dcgan():
        gan.train_step(G, D, og, od, real)

    def vae_step():
        logits, mu, logvar = vae(xv)
        loss = neg_elbo(logits, xv, mu, logvar)
        ov.zero_grad()
        loss.backward()
        ov.step()

    def clip_step():
        _, _, loss = clip(images, ids, eot)
        oc.zero_grad()
        loss.backward()
        oc.step()
        clip.clamp_logit_scale()
    return {"DCGAN": dcgan, "conv VAE": vae_step, "CLIP": clip_step}


def ppo_phases(device, num_envs=4, num_steps=128):
    """demos/ppo_cartpole.py's two phases on `device`: a rollout of num_steps steps of
    num_envs CartPoles (the envs step on the host, so each step reads its actions back),
    then one PPO update (4 epochs x 4 minibatches, CleanRL's settings)."""
    import tinygen as tg
    from tinygen.rl.cartpole import CartPole
    from tinygen.rl.ppo import (
        Agent,
        PPOConfig,
        RolloutStorage,
        collect_rollout,
        compute_gae,
        ppo_update,
    )

    tg.manual_seed(1)
    agent = Agent(CartPole.obs_dim, CartPole.num_actions, device=device)
    optimizer = tg.optim.Adam(agent.parameters(), lr=2.5e-4, eps=1e-5)
    envs = CartPole(num_envs, seed=1)
    storage = RolloutStorage(num_steps, num_envs, CartPole.obs_dim, device=device)
    state = {"obs": envs.reset(), "done": np.zeros(num_envs, np.float32)}
    cfg = PPOConfig()

    def rollout():
        state["obs"], state["done"] = collect_rollout(agent, envs, storage, state["obs"],
                                                      state["done"])[:2]

    def update():
        with tg.no_grad():
            next_value = agent.get_value(tg.as_tensor(state["obs"], device=device))
        adv, ret = compute_gae(storage.rewards, storage.values, storage.dones, next_value,
                               state["done"], 0.99, 0.95)  # the demo's gamma, lambda
        ppo_update(agent, optimizer, storage.batch(adv, ret), cfg)
    return {"PPO rollout (128 steps x 4 envs)": rollout, "PPO update (16 minibatches)": update}


def emulated_counts():
    """Launches / syncs / uploads of one training step per model, on the CuPy emulator."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import cupy_emulator

    import tinygen.backend
    tinygen.backend.cp = cupy_emulator.cupy
    counts, steps = {}, {}
    for name in ("baby", "shakespeare-char"):
        # launches and syncs do not depend on B and T: count at a small batch (NumPy is slow)
        steps[f"GPT {name}"] = gpt_step({**CONFIGS[name], "batch": 2, "block_size": 16},
                                        "cuda")[1]
    steps.update(conv_steps("cuda"))
    steps.update(ppo_phases("cuda"))
    for name, step in steps.items():
        step()                       # the first step builds optimizer state
        cupy_emulator.COUNTS.reset()
        step()
        counts[name] = cupy_emulator.COUNTS.snapshot()
    return counts


def cuda_tests():
    env = dict(os.environ, TINYGEN_EMULATE_CUDA="0", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-k", "cuda", "tests"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    return {"returncode": out.returncode, "summary": out.stdout.strip().splitlines()[-1:]}


def torch_step(cfg, seed=0):
    import torch
    from torch_gpt import TorchGPT

    torch.manual_seed(seed)
    args = {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "block_size")}
    model = TorchGPT(VOCAB, **args).cuda()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
    rng = np.random.default_rng(seed)
    shape = (cfg["batch"], cfg["block_size"])
    x, y = (torch.from_numpy(rng.integers(0, VOCAB, shape)).cuda() for _ in range(2))

    def step():
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss
    return step


def gpu_benchmark(iters):
    import cupy
    import torch

    results = {}
    for name, cfg in CONFIGS.items():
        tokens = cfg["batch"] * cfg["block_size"]
        pool = cupy.get_default_memory_pool()
        pool.free_all_blocks()
        _, tg_step = gpt_step(cfg, "cuda")
        tg_ms, first_loss = timed(tg_step, iters, cupy.cuda.Device().synchronize)
        tg_peak = pool.total_bytes()  # what the pool holds after the step: its high-water mark
        with_kernels = kernels_step(cfg, iters, cupy.cuda.Device().synchronize)
        torch.cuda.reset_peak_memory_stats()
        th_ms, _ = timed(torch_step(cfg), iters, torch.cuda.synchronize)
        results[name] = {
            "tinygen": {"ms_per_iter": tg_ms, "tokens_per_s": tokens / tg_ms * 1000,
                        "peak_device_mib": tg_peak / 2**20},
            "torch": {"ms_per_iter": th_ms, "tokens_per_s": tokens / th_ms * 1000,
                      "peak_device_mib": torch.cuda.max_memory_allocated() / 2**20},
            "tinygen_over_torch": tg_ms / th_ms,
            "tinygen_kernels_on": {**with_kernels, "over_torch": with_kernels["ms_per_iter"]
                                   / th_ms, "first_loss_kernels_off": first_loss.item()}}
    return results


def kernels_step(cfg, iters, sync):
    """tinygen's step again with every CUDA kernel switched on (ops/kernels.py; compiled in
    the warm-up steps): ms/iter and the first loss, to read beside the kernels-off one."""
    from tinygen.ops import kernels

    kernels.enable()
    try:
        ms, loss = timed(gpt_step(cfg, "cuda")[1], iters, sync)
    finally:
        kernels.disable()
    tokens = cfg["batch"] * cfg["block_size"]
    return {"ms_per_iter": ms, "tokens_per_s": tokens / ms * 1000, "first_loss": loss.item()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulate", action="store_true",
                        help="no GPU: count launches and syncs per step on the CuPy emulator")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--out", default=None, help="write the JSON here too")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    if args.emulate:
        report = {"emulated_counts_per_step": emulated_counts()}
    else:
        # counts first, in a child process: the emulator replaces tinygen's CuPy there
        counts = subprocess.run([sys.executable, __file__, "--emulate"], capture_output=True,
                                text=True, check=True, env=dict(os.environ, PYTHONPATH=ROOT))
        report = {"cuda_tests": cuda_tests(), "gpt": gpu_benchmark(args.iters),
                  **json.loads(counts.stdout)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
