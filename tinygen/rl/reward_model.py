"""The reward model of RLHF: a GPT trunk with a scalar head, trained on preference pairs.

Following Ziegler et al. 2019 and InstructGPT (Ouyang et al. 2022): the reward model starts
as a copy of the supervised (SFT) policy, its language-model head replaced by a linear
layer to one number, read at the **last token** of prompt + response. It learns from pairs
(chosen y_w, rejected y_l) under the Bradley–Terry model of preferences,

    P(y_w ≻ y_l | x) = σ(r(x, y_w) - r(x, y_l)),    loss = -log σ(r_chosen - r_rejected),

so only differences of rewards matter; `normalize` then fixes the offset and scale so that
rewards on the SFT policy's samples have mean 0 and standard deviation 1 (Ziegler et al.).

Read in order: the GPT trunk (shared with rlhf.py), copying a GPT, the reward model, the loss.
Shapes: B batch, T time, C = n_embd channels.
"""

import numpy as np

from tinygen import nn
from tinygen.autograd import no_grad
from tinygen.backend import get_array_module
from tinygen.creation import as_tensor
from tinygen.models.gpt import GPT
from tinygen.nn import functional as F
from tinygen.tensor import Tensor


def hidden_states(gpt, idx):
    """The GPT's final hidden states [B, T, C] (GPT.hidden_states): what heads read."""
    return gpt.hidden_states(idx)


def copy_gpt(gpt):
    """A new GPT with the same config and a copy of the weights (nothing shared)."""
    clone = GPT(gpt.config)
    clone.load_state_dict(gpt.state_dict())
    clone.to(gpt.lm_head.weight.device)
    return clone


class RewardModel(nn.Module):
    """r(x, y): a GPT trunk and a linear `score_head` [C -> 1] read at one position per row.
    (The copied GPT keeps its lm_head, tied to the embedding, so it costs no parameters.)"""

    def __init__(self, gpt):
        self.gpt = copy_gpt(gpt)
        self.score_head = nn.Linear(gpt.config.n_embd, 1, device=gpt.lm_head.weight.device)
        nn.init.normal_(self.score_head.weight, 0.0, 1.0 / np.sqrt(gpt.config.n_embd + 1))
        nn.init.zeros_(self.score_head.bias)
        # set by `normalize`: reward = (raw - reward_mean) / reward_std
        self.reward_mean, self.reward_std = 0.0, 1.0

    def forward(self, tokens, last):
        """tokens [B, T] (prompt + response) and last [B], the index of each row's last
        response token -> rewards [B]. Causal attention means that padding after `last`
        cannot change the result."""
        h = hidden_states(self.gpt, tokens)                                  # [B, T, C]
        last = as_tensor(last, device=h.device).data
        h_last = h[get_array_module(last).arange(len(last)), last]           # [B, C]
        raw = self.score_head(h_last).reshape(-1)                            # [B]
        return (raw - self.reward_mean) / self.reward_std

    @no_grad()
    def normalize(self, tokens, last):
        """Fix offset and scale so that the rewards of these samples (the SFT policy's, in
        practice) have mean 0 and standard deviation 1 (Ziegler et al. 2019, section 2.2)."""
        self.reward_mean, self.reward_std = 0.0, 1.0
        raw = self(tokens, last).numpy()
        self.reward_mean, self.reward_std = float(raw.mean()), float(raw.std() + 1e-8)


def bradley_terry_loss(r_chosen, r_rejected):
    """-log σ(r_chosen - r_rejected), averaged over pairs [B] (Bradley & Terry 1952;
    InstructGPT eq. 1). It is binary cross-entropy with target 1 on the logit r_w - r_l,
    which F computes without ever taking the log of a probability rounded to 0."""
    diff = r_chosen - r_rejected
    xp = get_array_module(diff.data)
    return F.binary_cross_entropy_with_logits(diff, Tensor(xp.ones_like(diff.data)))


def pairwise_accuracy(r_chosen, r_rejected):
    """Fraction of pairs where the chosen response gets the higher reward (ties count 0)."""
    r_chosen, r_rejected = as_tensor(r_chosen).numpy(), as_tensor(r_rejected).numpy()
    return float((r_chosen > r_rejected).mean())
