"""The two phases of demos/ppo_cartpole.py in tinygen and PyTorch, side by side.

  rollout  128 steps of 4 CartPole environments under the policy (the same NumPy
           environments for both libraries; the policy's forward pass, sampling, log-probs
           and values in each library)
  update   one PPO update on that 512-sample batch: 4 epochs x 4 minibatches of 128, each
           the clipped surrogate + clipped value loss + entropy bonus, backward, gradient
           clipping, Adam (CleanRL's CartPole settings)
tinygen runs tinygen.rl.ppo; PyTorch runs CleanRL's loop in torch_ppo.py with the same
weights, batch and minibatch order, so the first figures must agree (rollout: V of the
first observations; update: the mean value loss). Tiny networks (4-64-64-2): this measures
the per-operation overhead of each library more than its arithmetic.

    python benchmarks/ppo.py [--iters 15] [--rounds 3]
"""

import argparse

import numpy as np
from common import add_arguments, compare, copy_weights, torch

import tinygen as tg
from tinygen.random import generator
from tinygen.rl.cartpole import CartPole
from tinygen.rl.ppo import Agent, PPOConfig, RolloutStorage, collect_rollout, compute_gae
from tinygen.rl.ppo import ppo_update as tinygen_ppo_update

NUM_ENVS, NUM_STEPS = 4, 128


def workloads(lib, args, seed=1):
    """name -> step function for `lib`; tinygen's seeded agent and the batch it collected
    are shared, the weights copied into the PyTorch twin."""
    tg.manual_seed(seed)
    agent = Agent(CartPole.obs_dim, CartPole.num_actions)
    envs = CartPole(NUM_ENVS, seed=seed)
    storage = RolloutStorage(NUM_STEPS, NUM_ENVS, CartPole.obs_dim)
    next_obs, next_done = collect_rollout(agent, envs, storage, envs.reset(),
                                          np.zeros(NUM_ENVS, np.float32))[:2]
    with tg.no_grad():
        next_value = agent.get_value(next_obs)
    advantages, returns = compute_gae(storage.rewards, storage.values, storage.dones,
                                      next_value, next_done, 0.99, 0.95)
    batch = {k: v.numpy().copy() for k, v in storage.batch(advantages, returns).items()}
    cfg = PPOConfig()
    state = {"obs": envs.reset(), "done": np.zeros(NUM_ENVS, np.float32)}

    if lib == "tinygen":
        optimizer = tg.optim.Adam(agent.parameters(), lr=2.5e-4, eps=1e-5)

        def rollout():
            state["obs"], state["done"] = collect_rollout(agent, envs, storage, state["obs"],
                                                          state["done"])[:2]
            return storage.values[0].sum().item()

        tg_batch = {k: tg.tensor(v) for k, v in batch.items()}

        def update():
            tg.manual_seed(seed)  # the same minibatch order as the twin's
            return tinygen_ppo_update(agent, optimizer, tg_batch, cfg)["value_loss"]
    else:
        import torch_ppo

        twin = copy_weights(torch_ppo.TorchAgent(CartPole.obs_dim, CartPole.num_actions),
                            agent)
        optimizer = torch.optim.Adam(twin.parameters(), lr=2.5e-4, eps=1e-5)
        buffers = torch_ppo.Storage(NUM_STEPS, NUM_ENVS, CartPole.obs_dim)

        def rollout():
            state["obs"], state["done"] = torch_ppo.rollout(twin, envs, buffers, state["obs"],
                                                            state["done"])
            return float(buffers.values[0].sum())

        def update():
            tg.manual_seed(seed)
            permutations = [generator("cpu").permutation(len(batch["actions"]))
                            for _ in range(cfg.update_epochs)]
            return torch_ppo.ppo_update(twin, optimizer, batch, permutations, cfg)

    return {"rollout": rollout, "update": update}


def main():
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]),
                           iters=10)
    compare(workloads, ("rollout", "update"), parser.parse_args(),
            floor=[(128, 4, 64), (128, 64, 64)])  # a minibatch through the 64-wide MLP


if __name__ == "__main__":
    main()
