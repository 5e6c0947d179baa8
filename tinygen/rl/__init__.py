"""tinygen.rl: reinforcement learning. ppo.py is PPO (Schulman et al. 2017) and cartpole.py a
NumPy CartPole-v1 to train it on; the RLHF files apply ppo.py's losses to language models."""
