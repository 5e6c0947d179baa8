"""Train PPO on CartPole-v1, top to bottom, as CleanRL's ppo.py does.

Config -> environments -> agent -> (rollout -> advantages -> update) in a loop -> summary.

    python demos/ppo_cartpole.py                 # 500k steps; CleanRL reaches 490 ± 6
    python demos/ppo_cartpole.py --seed 2 --out_dir out/ppo_cartpole_2
    python demos/ppo_cartpole.py --smoke         # a few seconds, to check that it all runs

It ends with one JSON line of headline figures, also written to <out_dir>/summary.json;
mean_return is the mean return of the last 100 finished episodes (500 is the maximum).
"""

import dataclasses
import json
import os
import time
from collections import deque
from dataclasses import dataclass

# The matrices here are tiny (128 x 64 at most). OpenBLAS's worker threads cost more than
# they save on them, and they stall whenever another process holds a core: on a busy
# 2-core machine the update ran 40x slower with them. One thread, unless you ask for more;
# this must be set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

import tinygen as tg
from tinygen.cli import parse_config
from tinygen.rl.cartpole import CartPole
from tinygen.rl.ppo import (
    Agent,
    PPOConfig,
    RolloutStorage,
    collect_rollout,
    compute_gae,
    ppo_update,
)


@dataclass
class Args(PPOConfig):  # the update's fields (clip_coef, ent_coef, ...) come from PPOConfig
    seed: int = 1
    total_timesteps: int = 500_000  # environment steps, over all environments
    learning_rate: float = 2.5e-4
    num_envs: int = 4               # CartPoles run side by side
    num_steps: int = 128            # steps per environment in each rollout
    anneal_lr: bool = True          # learning rate falls linearly to 0 over the run
    gamma: float = 0.99             # discount
    gae_lambda: float = 0.95        # λ of generalised advantage estimation
    adam_eps: float = 1e-5
    log_interval: int = 20          # iterations between log lines
    out_dir: str = "out/ppo_cartpole"
    device: str = "cpu"
    smoke: bool = False             # a tiny run of a few seconds


def parse_args():
    args = parse_config(Args, __doc__)
    if args.smoke:
        args = dataclasses.replace(args, total_timesteps=4 * args.num_envs * args.num_steps,
                                   log_interval=1)
    return args


args = parse_args()
batch_size = args.num_envs * args.num_steps            # B: samples per rollout
num_iterations = args.total_timesteps // batch_size
os.makedirs(args.out_dir, exist_ok=True)
tg.manual_seed(args.seed)  # network init, action sampling and minibatch shuffling

# ---- environments, agent, optimizer -------------------------------------------------------
envs = CartPole(args.num_envs, seed=args.seed)
agent = Agent(CartPole.obs_dim, CartPole.num_actions, device=args.device)
optimizer = tg.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=args.adam_eps)
storage = RolloutStorage(args.num_steps, args.num_envs, CartPole.obs_dim)
print(f"PPO on CartPole-v1: {args.num_envs} envs x {args.num_steps} steps = {batch_size} "
      f"samples per rollout, {num_iterations} iterations, {agent.num_parameters():,} "
      f"parameters on {args.device}")

# ---- training loop ------------------------------------------------------------------------
global_step = 0
recent_returns = deque(maxlen=100)  # returns of the last 100 finished episodes
next_obs = envs.reset()
next_done = np.zeros(args.num_envs, dtype=np.float32)
t_start = time.time()
for iteration in range(1, num_iterations + 1):
    if args.anneal_lr:
        frac = 1.0 - (iteration - 1.0) / num_iterations
        optimizer.param_groups[0]["lr"] = frac * args.learning_rate

    # 1. collect a rollout with the current policy
    next_obs, next_done, episode_returns = collect_rollout(agent, envs, storage, next_obs,
                                                           next_done)
    global_step += batch_size
    recent_returns.extend(episode_returns)

    # 2. advantages and returns, bootstrapped from the value of the observation after it
    with tg.no_grad():
        next_value = agent.get_value(tg.tensor(next_obs, device=args.device)).numpy()
    advantages, returns = compute_gae(storage.rewards, storage.values, storage.dones,
                                      next_value, next_done, args.gamma, args.gae_lambda)

    # 3. several epochs of minibatch steps on the clipped objective
    stats = ppo_update(agent, optimizer, storage.batch(advantages, returns), args)

    if iteration % args.log_interval == 0 or iteration == num_iterations:
        mean_return = np.mean(recent_returns) if recent_returns else float("nan")
        sps = global_step / (time.time() - t_start)
        print(f"step {global_step:>7,}: return {mean_return:6.1f} | "
              f"policy_loss {stats['policy_loss']:+.4f}, value_loss {stats['value_loss']:.3f}, "
              f"entropy {stats['entropy']:.3f}, approx_kl {stats['approx_kl']:.4f}, "
              f"clipfrac {stats['clipfrac']:.3f}, "
              f"explained_variance {stats['explained_variance']:.3f} | {sps:,.0f} steps/s")

# ---- summary ------------------------------------------------------------------------------
seconds = time.time() - t_start
summary = {
    "mean_return": round(float(np.mean(recent_returns)), 2) if recent_returns else None,
    "episodes_averaged": len(recent_returns), "steps": global_step,
    "seconds": round(seconds, 1), "steps_per_s": round(global_step / seconds),
    "seed": args.seed, "device": args.device,
}
with open(os.path.join(args.out_dir, "summary.json"), "w") as f:
    json.dump(summary, f)
print(json.dumps(summary))
