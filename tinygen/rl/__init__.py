"""tinygen.rl: reinforcement learning. ppo.py is PPO (Schulman et al. 2017) and cartpole.py a
NumPy CartPole-v1 to train it on; the RLHF files run ppo.py's update on language models, with
a mask that keeps the real tokens of each response."""
