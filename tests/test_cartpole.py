"""The NumPy CartPole (tinygen/rl/cartpole.py) against its equations, its episode ends and
seeding, and gymnasium's CartPole-v1 where installed."""

import math

import numpy as np
import pytest

from tinygen.rl.cartpole import CartPole


def test_cartpole_one_step_against_the_equations():
    env = CartPole(num_envs=2, seed=0)
    env.reset()
    state = np.array([[0.1, -0.2, 0.05, 0.3], [-0.5, 0.4, -0.1, -0.6]])
    env.state = state.copy()
    obs, reward, terminated, truncated, info = env.step(np.array([1, 0]))
    for i, push in enumerate([10.0, -10.0]):          # force_mag 10, right then left
        x, x_dot, theta, theta_dot = state[i]
        total_mass, polemass_length = 1.1, 0.1 * 0.5  # masscart 1 + masspole 0.1; length 0.5
        temp = (push + polemass_length * theta_dot ** 2 * math.sin(theta)) / total_mass
        thetaacc = (9.8 * math.sin(theta) - math.cos(theta) * temp) / (
            0.5 * (4 / 3 - 0.1 * math.cos(theta) ** 2 / total_mass))
        xacc = temp - polemass_length * thetaacc * math.cos(theta) / total_mass
        tau = 0.02                                    # Euler: positions from old velocities
        expected = [x + tau * x_dot, x_dot + tau * xacc, theta + tau * theta_dot,
                    theta_dot + tau * thetaacc]
        np.testing.assert_allclose(env.state[i], expected, rtol=1e-12)
    assert obs.dtype == np.float32 and env.state.dtype == np.float64
    np.testing.assert_array_equal(obs, env.state.astype(np.float32))
    np.testing.assert_array_equal(reward, [1, 1])
    assert not terminated.any() and not truncated.any() and len(info["episode_returns"]) == 0


def test_cartpole_termination_and_auto_reset():
    env = CartPole(num_envs=3, seed=0)
    env.reset()
    env.state = np.array([[2.39, 1.0, 0.0, 0.0],       # leaves the track (x > 2.4)
                          [0.0, 0.0, -0.2, -1.0],      # leans past 12° (0.2094 rad)
                          [0.0, 0.0, 0.0, 0.0]])       # stays up
    env.episode_return[:] = env.episode_length[:] = [7, 9, 3]
    obs, reward, terminated, truncated, info = env.step(np.array([1, 0, 1]))
    np.testing.assert_array_equal(terminated, [True, True, False])
    assert not truncated.any()
    np.testing.assert_array_equal(reward, [1, 1, 1])    # the last step is rewarded too
    np.testing.assert_array_equal(info["episode_returns"], [8, 10])
    np.testing.assert_array_equal(info["episode_lengths"], [8, 10])
    assert info["final_obs"][0, 0] > 2.4 and info["final_obs"][1, 2] < -0.2094
    assert np.abs(obs[:2]).max() <= 0.05                # reset to U(-0.05, 0.05)
    np.testing.assert_array_equal(env.episode_length, [0, 0, 4])


def test_cartpole_truncation_at_500_steps():
    env = CartPole(num_envs=2, seed=0)
    env.reset()
    env.state[:] = 0.0
    env.episode_length[:] = [499, 10]
    env.episode_return[:] = [499, 10]
    _, _, terminated, truncated, info = env.step(np.array([0, 1]))
    np.testing.assert_array_equal(truncated, [True, False])
    assert not terminated.any()
    np.testing.assert_array_equal(info["episode_returns"], [500])
    np.testing.assert_array_equal(env.episode_length, [0, 11])


def test_cartpole_is_seeded_and_checks_actions():
    a, b = CartPole(4, seed=3), CartPole(4, seed=np.random.default_rng(3))
    np.testing.assert_array_equal(a.reset(), b.reset())
    assert a.reset().shape == (4, 4) and np.abs(a.state).max() <= 0.05
    with pytest.raises(ValueError, match="expected 4 actions"):
        a.step(np.array([0, 1, 2, 0]))


def test_cartpole_matches_gymnasium():
    gym = pytest.importorskip("gymnasium")
    ref = gym.make("CartPole-v1")
    env = CartPole(1, seed=0)
    rng = np.random.default_rng(0)
    for episode in range(5):
        obs, _ = ref.reset(seed=episode)
        env.reset()
        env.state[0] = ref.unwrapped.state
        for t in range(1, 501):
            action = int(obs[2] + 0.5 * obs[3] > 0) if rng.random() < 0.9 else int(
                rng.integers(2))
            obs, reward, term, trunc, _ = ref.step(action)
            ours, r, terminated, truncated, info = env.step(np.array([action]))
            assert (terminated[0], truncated[0], r[0]) == (term, trunc, reward)
            if term or trunc:
                np.testing.assert_array_equal(info["final_obs"][0], obs)
                assert info["episode_lengths"][0] == t
                break
            np.testing.assert_array_equal(ours[0], obs)
