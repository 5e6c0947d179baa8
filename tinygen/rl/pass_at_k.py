"""pass@k, the functional-correctness metric of Codex (Chen et al. 2021, "Evaluating Large
Language Models Trained on Code", section 2.1 and its figure 3).

Draw n >= k samples per problem, count the c that pass every hidden test; the unbiased
estimate of the chance that at least one of k samples passes is

    pass@k = E_problems[ 1 - C(n - c, k) / C(n, k) ],

computed as a running product, since the binomials overflow for large n. (Drawing exactly
k samples and asking "did any pass" is unbiased too, but has a much larger variance.)
"""

import numpy as np


def pass_at_k(n, c, k):
    """Unbiased pass@k of one problem from n samples of which c passed (Chen et al. fig. 3)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(num_samples, num_correct, k):
    """pass@k averaged over problems: num_samples and num_correct are per-problem counts."""
    return float(np.mean([pass_at_k(int(n), int(c), k)
                          for n, c in zip(num_samples, num_correct)]))
