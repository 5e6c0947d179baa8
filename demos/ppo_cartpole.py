"""Train PPO on CartPole-v1, top to bottom, as CleanRL's ppo.py does.

Config -> environments -> agent -> (rollout -> advantages -> update) in a loop -> summary.

    python demos/ppo_cartpole.py                 # 500k steps; CleanRL reaches 490 ± 6
    python demos/ppo_cartpole.py --seed 2 --out_dir out/ppo_cartpole_2
    python demos/ppo_cartpole.py --smoke         # a few seconds, to check that it all runs

It ends with one JSON line of headline figures, also written to <out_dir>/summary.json;
mean_return is the mean return of the last 100 finished episodes (500 is the maximum).
returns.png draws that mean through training, loss.png the update's losses and entropy.
"""

import dataclasses
import os
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

import tinygen as tg
from tinygen.checks import at_least, between, check_fields, require
from tinygen.cli import parse_config
from tinygen.report import save_curves, write_summary
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
    total_timesteps: int = at_least(500_000, 1)  # environment steps, over all environments
    learning_rate: float = at_least(2.5e-4, 0.0)
    num_envs: int = at_least(4, 1)  # CartPoles run side by side
    num_steps: int = at_least(128, 1)  # steps per environment in each rollout
    anneal_lr: bool = True          # learning rate falls linearly to 0 over the run
    gamma: float = between(0.99, 0.0, 1.0)  # discount
    gae_lambda: float = between(0.95, 0.0, 1.0)  # λ of generalised advantage estimation
    adam_eps: float = at_least(1e-5, 0.0)
    log_interval: int = at_least(20, 1)  # iterations between log lines
    out_dir: str = "out/ppo_cartpole"
    device: str = "cpu"
    # The matrices here are tiny (128 x 64 at most). OpenBLAS's worker threads cost more than
    # they save on them, and they stall whenever another process holds a core: on a busy
    # 2-core machine the update ran 40x slower with them. One thread, unless you ask for more.
    threads: int = at_least(1, 1)   # BLAS threads
    smoke: bool = False             # a tiny run of a few seconds

    def __post_init__(self):
        super().__post_init__()  # the library config's own checks
        check_fields(self)
        batch = self.num_envs * self.num_steps
        require(self.total_timesteps >= batch, "total_timesteps", self.total_timesteps,
                f"must be >= num_envs * num_steps = {batch} (one rollout)")
        require(self.num_minibatches <= batch, "num_minibatches", self.num_minibatches,
                f"must be <= num_envs * num_steps = {batch}")


def parse_args():
    args = parse_config(Args, __doc__)
    if args.smoke:
        args = dataclasses.replace(args, total_timesteps=4 * args.num_envs * args.num_steps,
                                   log_interval=1)
    return args


args = parse_args()
tg.set_num_threads(args.threads)
batch_size = args.num_envs * args.num_steps            # B: samples per rollout
num_iterations = args.total_timesteps // batch_size
os.makedirs(args.out_dir, exist_ok=True)
tg.manual_seed(args.seed)  # network init, action sampling and minibatch shuffling

# ---- environments, agent, optimizer -------------------------------------------------------
envs = CartPole(args.num_envs, seed=args.seed)
agent = Agent(CartPole.obs_dim, CartPole.num_actions, device=args.device)
optimizer = tg.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=args.adam_eps)
storage = RolloutStorage(args.num_steps, args.num_envs, CartPole.obs_dim, device=args.device)
print(f"PPO on CartPole-v1: {args.num_envs} envs x {args.num_steps} steps = {batch_size} "
      f"samples per rollout, {num_iterations} iterations, {agent.num_parameters():,} "
      f"parameters on {args.device}")

# ---- training loop ------------------------------------------------------------------------
global_step = 0
recent_returns = deque(maxlen=100)  # returns of the last 100 finished episodes
next_obs = envs.reset()
next_done = np.zeros(args.num_envs, dtype=np.float32)
t_start = time.time()
curves = {name: ([], []) for name in ("return", "policy_loss", "value_loss", "entropy")}
for iteration in range(1, num_iterations + 1):
    if args.anneal_lr:
        frac = 1.0 - (iteration - 1.0) / num_iterations
        optimizer.set_lr(frac * args.learning_rate)

    # 1. collect a rollout with the current policy
    next_obs, next_done, episode_returns = collect_rollout(agent, envs, storage, next_obs,
                                                           next_done)
    global_step += batch_size
    recent_returns.extend(episode_returns)

    # 2. advantages and returns, bootstrapped from the value of the observation after it
    with tg.no_grad():
        next_value = agent.get_value(next_obs)
    advantages, returns = compute_gae(storage.rewards, storage.values, storage.dones,
                                      next_value, next_done, args.gamma, args.gae_lambda)

    # 3. several epochs of minibatch steps on the clipped objective
    stats = ppo_update(agent, optimizer, storage.batch(advantages, returns), args)
    for name in curves:
        curves[name][0].append(global_step)
        curves[name][1].append(np.mean(recent_returns) if name == "return" and recent_returns
                               else stats.get(name, float("nan")))

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
save_curves(os.path.join(args.out_dir, "returns.png"), {"mean return": curves.pop("return")},
            xlabel="environment step", title="PPO on CartPole: mean return of the last 100")
save_curves(os.path.join(args.out_dir, "loss.png"), curves, xlabel="environment step",
            title="PPO losses")
write_summary(args.out_dir, summary)
