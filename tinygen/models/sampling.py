"""Drawing the next token: logits processors and the sampler that GPT.generate uses.

A logits processor is any callable (ids [B, T], logits [B, V]) -> logits [B, V], both
Tensors, as Hugging Face's `LogitsProcessor` (input_ids, scores) -> scores. generate applies
its `logits_processor` (one callable or a list, in order) to the last position's logits
before temperature, top-k and top-p, so a new way of shaping the distribution is a small
class here, not a copy of the KV-cache loop. Two examples follow: RepetitionPenalty and MinP.
"""

import numpy as np

from tinygen.backend import device_of, get_array_module
from tinygen.creation import as_tensor
from tinygen.random import generator
from tinygen.tensor import Tensor


class RepetitionPenalty:
    """Make tokens that already occur in ids less likely (Keskar et al. 2019, CTRL, sec. 4.1;
    HF's RepetitionPenaltyLogitsProcessor): a seen token's logit is divided by `penalty`
    when positive and multiplied by it when negative, so it always moves down for
    penalty > 1. penalty 1 changes nothing."""

    def __init__(self, penalty):
        if not penalty > 0:
            raise ValueError(f"RepetitionPenalty: penalty={penalty!r}: must be > 0")
        self.penalty = penalty

    def __call__(self, ids, logits):
        ids, logits = as_tensor(ids).data, as_tensor(logits).data
        xp = get_array_module(logits)
        rows = xp.arange(len(ids))[:, None]                            # [B, 1]
        seen = logits[rows, ids]                                        # [B, T]
        seen = xp.where(seen > 0, seen / self.penalty, seen * self.penalty)
        out = logits.copy()
        out[rows, ids] = seen  # a token seen twice gets the same value twice: penalised once
        return Tensor(out)


class MinP:
    """Min-p sampling (Nguyen et al. 2024, "Turning Up the Heat: Min-p Sampling for Creative
    and Coherent LLM Outputs"; HF's MinPLogitsWarper): keep only tokens whose probability is
    at least min_p times that of the most likely token; the cut scales with the model's
    confidence. Applied before temperature, it measures the probabilities at temperature 1."""

    def __init__(self, min_p):
        if not 0 <= min_p <= 1:
            raise ValueError(f"MinP: min_p={min_p!r}: must be in [0, 1]")
        self.min_p = min_p

    def __call__(self, ids, logits):
        logits = as_tensor(logits).data
        xp = get_array_module(logits)
        # p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p)
        cut = logits.max(axis=-1, keepdims=True) + np.log(self.min_p) if self.min_p > 0 \
            else -xp.inf
        return Tensor(xp.where(logits < cut, -xp.inf, logits))


def apply_processors(logits_processor, ids, logits):
    """Run one processor or a list of them (None: none) over logits [B, V]."""
    if logits_processor is None:
        return logits
    processors = logits_processor if isinstance(logits_processor, (list, tuple)) \
        else [logits_processor]
    for process in processors:
        logits = as_tensor(process(ids, logits))
    return logits


def sample(logits, temperature=1.0, top_k=None, top_p=None):
    """Draw one token id per row of logits [B, V] with the global generator -> int64
    Tensor [B]. temperature 0 means greedy; top_k keeps the k largest logits; top_p keeps
    the smallest set of tokens whose probability adds up to at least p (nucleus sampling,
    Holtzman et al. 2020)."""
    logits = as_tensor(logits).data
    xp = get_array_module(logits)
    if temperature == 0:
        return Tensor(logits.argmax(axis=-1))
    logits = logits.astype(xp.float64) / temperature
    if top_k is not None:
        k = min(top_k, logits.shape[-1])  # the k-th largest, by a partial sort: O(V)
        kth = xp.partition(logits, -k, axis=-1)[:, -k, None]
        logits = xp.where(logits < kth, -xp.inf, logits)
    probs = xp.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None:
        desc = -xp.sort(-probs, axis=-1)
        # keep a token unless the tokens more likely than it already reach top_p
        n_keep = ((xp.cumsum(desc, axis=-1) - desc) < top_p).sum(axis=-1, keepdims=True)
        cutoff = xp.take_along_axis(desc, n_keep - 1, axis=-1)  # least likely token kept
        probs = xp.where(probs >= cutoff, probs, 0.0)
        probs /= probs.sum(axis=-1, keepdims=True)
    u = generator(device_of(logits)).random((probs.shape[0], 1))
    # inverse-CDF sampling: the first token whose cumulative probability exceeds u
    return Tensor(xp.minimum((xp.cumsum(probs, axis=-1) <= u).sum(axis=-1),
                             probs.shape[-1] - 1))
