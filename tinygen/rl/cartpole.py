"""CartPole-v1 in NumPy, for many environments at once.

A pole stands on a cart that moves along a track; each step the agent pushes the cart left
(action 0) or right (action 1) with a fixed force and gets a reward of 1. The episode
terminates when the pole leans more than 12° or the cart leaves the track (|x| > 2.4), and
is truncated after 500 steps. The physics are Barto, Sutton & Anderson (1983) as written in
gymnasium's `CartPoleEnv` (same constants, same Euler integration, same float64 state and
float32 observations), so returns compare directly with published CartPole-v1 results.

The environments are batched: `state` is [num_envs, 4] and one `step(actions)` moves all of
them. An environment whose episode ends is reset at once (as gymnasium's vector envs do):
`step` returns the first observation of its next episode, flags the end in `terminated` or
`truncated`, and reports the finished episode's return and length in `info`.
"""

import math

import numpy as np

from tinygen.creation import as_tensor


class CartPole:
    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5                     # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02                       # seconds between state updates
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4
    max_episode_steps = 500          # CartPole-v1's time limit
    obs_dim = 4                      # x, x_dot, theta, theta_dot
    num_actions = 2                  # push left, push right

    def __init__(self, num_envs=1, seed=None):
        """`seed` is an int or a np.random.Generator; it drives every reset."""
        self.num_envs = num_envs
        self.rng = np.random.default_rng(seed)
        self.state = np.zeros((num_envs, 4))
        self.episode_return = np.zeros(num_envs)
        self.episode_length = np.zeros(num_envs, dtype=np.int64)

    def _initial_state(self, n):
        return self.rng.uniform(low=-0.05, high=0.05, size=(n, 4))

    def reset(self):
        """Start a new episode in every environment; returns obs [num_envs, 4] float32."""
        self.state = self._initial_state(self.num_envs)
        self.episode_return[:] = 0
        self.episode_length[:] = 0
        return self.state.astype(np.float32)

    def dynamics(self, state, action):
        """One Euler step of the cart-pole equations: state [n, 4], action [n] -> [n, 4]."""
        x, x_dot, theta, theta_dot = state.T
        force = np.where(action == 1, self.force_mag, -self.force_mag)
        costheta, sintheta = np.cos(theta), np.sin(theta)
        temp = (force + self.polemass_length * theta_dot ** 2 * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta ** 2 / self.total_mass))
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        x = x + self.tau * x_dot                      # Euler: positions use the old velocities
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc
        return np.stack([x, x_dot, theta, theta_dot], axis=1)

    def step(self, action):
        """Push every cart: action [num_envs] of 0/1.
        Returns obs, reward, terminated, truncated (each [num_envs]) and info, where
        info["final_obs"], info["episode_returns"] and info["episode_lengths"] hold the last
        observation, return and length of each episode that ended, in environment order."""
        action = as_tensor(action).numpy()   # a Tensor (read back from its device) or array
        if action.shape != (self.num_envs,) or not ((action == 0) | (action == 1)).all():
            raise ValueError(f"CartPole.step: expected {self.num_envs} actions in {{0, 1}}, "
                             f"got {action!r}")
        self.state = self.dynamics(self.state, action)
        x, theta = self.state[:, 0], self.state[:, 2]
        terminated = (np.abs(x) > self.x_threshold) | (np.abs(theta) > self.theta_threshold_radians)
        reward = np.ones(self.num_envs, dtype=np.float32)  # 1 per step, the last one included
        self.episode_return += reward
        self.episode_length += 1
        truncated = self.episode_length >= self.max_episode_steps  # gymnasium's TimeLimit
        done = terminated | truncated
        info = {"final_obs": self.state[done].astype(np.float32),
                "episode_returns": self.episode_return[done].copy(),
                "episode_lengths": self.episode_length[done].copy()}
        if done.any():  # auto-reset: the finished environments start their next episode
            self.state[done] = self._initial_state(int(done.sum()))
            self.episode_return[done] = 0
            self.episode_length[done] = 0
        return self.state.astype(np.float32), reward, terminated, truncated, info
