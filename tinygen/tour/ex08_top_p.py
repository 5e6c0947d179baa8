"""Tour exercise 8 (stop 8, sampling): nucleus (top-p) filtering.

Holtzman et al. 2020: keep the smallest set of most likely tokens whose probabilities add
up to at least top_p, zero the rest, renormalise. probs [B, V] (a NumPy array, rows sum
to 1) -> filtered probs [B, V]. The most likely token is always kept.
Check: python -m tinygen.tour check 8
"""


def top_p_filter(probs, top_p):
    return probs  # tour exercise 8: keep only the nucleus
