"""Tour exercise 15 (stop 15, GRPO): group-relative advantages.

DeepSeekMath (Shao et al. 2024), sec. 4.1.2: no value network; sample G programs per
prompt, score each in the sandbox, and use the score normalised within its group as the
advantage of every token of that program:  A = (r - mean(r)) / (std(r) + eps), with the
mean and std (ddof=1, as TRL) over each row. rewards [N, G] -> advantages [N, G].
A group whose programs all scored the same gets advantage 0: no signal which is better.
Check: python -m tinygen.tour check 15
"""


def group_advantages(rewards, eps=1e-4):
    return rewards - rewards.mean()  # tour exercise 15: per group, and scaled
