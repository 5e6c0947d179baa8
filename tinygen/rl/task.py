"""A toy instruction-following task for RLHF: sort the letters, judged by a hidden rule.

A prompt is a handful of distinct letters, left-padded to a fixed width, then "=":

    prompt      "__dbfa="          (min_len..max_len letters from `letters`, padded with "_")
    response    "abdf."            (the letters in alphabetical order, then "." to stop)

The **hidden true preference rule** (`true_score`) is code that plays the human labeller:
it compares the answer (the response up to its first ".") with the sorted letters position
by position and returns

    score = (positions where answer[i] == target[i]) / max(len(target), len(answer))

a graded number in [0, 1]: 1 only for the exact answer; a missing, repeated or swapped
letter or an unsorted copy each lose a different part. Graded scores make head-to-head
comparisons decisive: two different imperfect answers rarely tie, so the ties left are
mostly prompts where both answers are exact (`head_to_head` reports both win rates).
Prompts are left-padded to one width so that a batch of them needs no attention mask.

Why this leaves room for RL (the story of InstructGPT, Ouyang et al. 2022): the
**demonstrations are sloppy**. The demonstrator writes the right answer only with
probability p_correct (0.15); it has a habit, stopping one letter early, with probability
p_lazy (0.4); otherwise it makes one of four random mistakes: it swaps two neighbouring
letters, leaves one out, writes one twice, or copies the letters unsorted. A model
fine-tuned on these demonstrations (SFT) learns the demonstrator's habits, mistakes
included: sampled answers are exact about a fifth of the time, and greedy decoding does
not help, because stopping early is the single most likely answer (greedy SFT is exact
less than a tenth of the time). Judging which of two answers is better is easier than
writing a perfect one: preference pairs labelled by the rule carry the information the
demonstrations lack, and a reward model trained on them lets PPO (or DPO, directly) move
the policy toward exact answers.

Everything is generated procedurally and deterministically from a NumPy Generator.
"""

from dataclasses import dataclass

import numpy as np

from tinygen.checks import check_positive, check_probability
from tinygen.data.tokenizers import CharTokenizer

PAD, SEP, EOS = "_", "=", "."   # left padding of prompts, end of prompt, end of response
MISTAKES = ("swap", "drop", "repeat", "unsorted")


@dataclass
class SortTask:
    """Prompts, a sloppy demonstrator and the hidden rule (see the module docstring)."""

    letters: str = "abcdefgh"   # the alphabet prompts are drawn from
    min_len: int = 3            # fewest letters in a prompt
    max_len: int = 6            # most letters in a prompt
    p_correct: float = 0.15     # probability that a demonstration is exactly right
    p_lazy: float = 0.4         # probability that it stops one letter early (a habit)

    def __post_init__(self):
        check_positive(self, "min_len")
        if not self.min_len <= self.max_len <= len(self.letters):
            raise ValueError(f"max_len={self.max_len!r}: must be in [min_len={self.min_len}, "
                             f"len(letters)={len(self.letters)}] (the letters are distinct)")
        # (p_correct + p_lazy may pass 1: the habit then takes what p_correct leaves)
        check_probability(self, "p_correct", "p_lazy", closed=True)

    @property
    def prompt_len(self):
        """Characters in every prompt: max_len letters (padded) and the "=" ."""
        return self.max_len + 1

    @property
    def response_len(self):
        """Tokens a policy may generate: room for one letter too many and the "." ."""
        return self.max_len + 2

    def tokenizer(self):
        return CharTokenizer(PAD + self.letters + SEP + EOS)

    # ---- data -----------------------------------------------------------------------------
    def prompts(self, n, rng, exclude=()):
        """n prompts of distinct letters in random order, none of them in `exclude`."""
        exclude, out = set(exclude), []
        while len(out) < n:
            k = int(rng.integers(self.min_len, self.max_len + 1))
            chosen = rng.choice(len(self.letters), size=k, replace=False)
            prompt = PAD * (self.max_len - k) + "".join(self.letters[i] for i in chosen) + SEP
            if prompt not in exclude:
                out.append(prompt)
        return out

    def demonstration(self, prompt, rng):
        """A sloppy demonstrator's response (ending in "."): right with probability
        p_correct; one letter short with probability p_lazy (the habit); otherwise one
        mistake drawn uniformly from MISTAKES."""
        given = prompt.strip(PAD + SEP)
        answer = sorted(given)
        u = rng.random()
        if self.p_correct <= u < self.p_correct + self.p_lazy:
            answer = answer[:-1]
        elif u >= self.p_correct + self.p_lazy:
            mistake = MISTAKES[int(rng.integers(len(MISTAKES)))]
            i = int(rng.integers(len(answer) - 1))     # a position with a neighbour after it
            if mistake == "swap":
                answer[i], answer[i + 1] = answer[i + 1], answer[i]
            elif mistake == "drop":
                del answer[int(rng.integers(len(answer)))]
            elif mistake == "repeat":
                answer.insert(i, answer[i])
            else:
                answer = list(given)
        return "".join(answer) + EOS

    # ---- the hidden rule --------------------------------------------------------------------
    def true_score(self, prompt, response):
        """The hidden preference rule: graded agreement of the answer (response up to the
        first ".") with the sorted letters of the prompt, in [0, 1]; 1 means exact."""
        target = sorted(prompt.strip(PAD + SEP))
        answer = answer_of(response)
        matches = sum(a == t for a, t in zip(answer, target))
        return matches / max(len(target), len(answer))


def answer_of(response):
    """The part of a response before its first "." (all of it if there is none)."""
    return response.split(EOS, 1)[0]


def head_to_head(scores_a, scores_b):
    """Compare two policies prompt by prompt (one sample each) under the hidden rule:
    a wins where its score is higher. win_rate counts a tie as half a win;
    win_rate_no_ties leaves the ties out (0.5 when every prompt is a tie)."""
    scores_a, scores_b = np.asarray(scores_a), np.asarray(scores_b)
    wins, ties = float((scores_a > scores_b).mean()), float((scores_a == scores_b).mean())
    decided = 1.0 - ties
    return {"win_rate": wins + 0.5 * ties, "tie_rate": ties,
            "win_rate_no_ties": wins / decided if decided > 0 else 0.5}
