"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019).

Updates run in place on the parameter arrays and moment buffers, with Python-float
coefficients so float32 stays float32 and no step allocates more than two temporaries.
"""

import math

from tinygen.backend import get_array_module
from tinygen.blocked import in_row_blocks
from tinygen.ops import kernels
from tinygen.optim import adam_kernel
from tinygen.optim.optimizer import Optimizer


class Adam(Optimizer):
    """Adam. weight_decay here is the classic L2 penalty added to the gradient; use AdamW
    for decoupled weight decay (what GPT training uses)."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 flat=True):
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay}, flat=flat)

    def step(self):
        done = set()
        for buf in self._flat_ready():  # whole buffers: the same arithmetic, one call each
            group = self.param_groups[buf.group]
            m = buf.moment("exp_avg", self._flat_state, self.state)
            v = buf.moment("exp_avg_sq", self._flat_state, self.state)
            for p in buf.params:
                self.state[p]["step"] = self.state[p].get("step", 0) + 1
                done.add(id(p))
            self._update(buf.data, buf.grad, m, v, self.state[buf.params[0]]["step"], group)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or id(p) in done:
                    continue
                x = p.data
                xp = get_array_module(x)
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {"step": 0, "exp_avg": xp.zeros_like(x),
                                             "exp_avg_sq": xp.zeros_like(x)}
                state["step"] += 1
                self._update(x, p.grad.data, state["exp_avg"], state["exp_avg_sq"],
                             state["step"], group)

    def _update(self, x, g, m, v, t, group):
        """One Adam step in place on x (and the moments m, v) from the gradient g, a block
        of a flat buffer at a time (tinygen.blocked: the passes over a block stay in cache;
        at 10.7M parameters 88 -> 46 ms of CPU time, docs/cpu_speed.md)."""
        lr, (beta1, beta2), eps, wd = (group["lr"], group["betas"], group["eps"],
                                       group["weight_decay"])
        flat = x.ndim == 1 and all(a.flags.c_contiguous for a in (x, g, m, v))
        if flat and kernels.use("adam", x, g, m, v):         # adam.cu, when switched on
            return adam_kernel.adam_step_cuda(x, g, m, v, t, lr, (beta1, beta2), eps, wd,
                                              self.decoupled)
        c = {"shrink": 1.0 - lr * wd if wd and self.decoupled else None,
             "l2": wd if wd and not self.decoupled else None,
             "beta1": beta1, "beta2": beta2, "eps": eps,
             "rbias2": 1.0 / math.sqrt(1.0 - beta2 ** t), "step": lr / (1.0 - beta1 ** t)}
        if not flat:
            return self._adam_formula(x, g, m, v, c)  # one parameter: the whole arrays
        # a flat buffer [total]: its blocks are slices
        in_row_blocks(self._adam_formula, x, g, m, v, shared=(c,))

    @staticmethod
    def _adam_formula(x, g, m, v, c):
        xp = get_array_module(x)
        if c["shrink"] is not None:
            x *= c["shrink"]                   # AdamW: shrink the weights directly
        elif c["l2"] is not None:
            g = g + c["l2"] * x                # Adam: L2 penalty in the gradient
        m *= c["beta1"]                        # m = β1 m + (1 - β1) g
        tmp = xp.multiply(g, 1.0 - c["beta1"], out=xp.empty_like(x))  # an array even when 0-d
        m += tmp
        v *= c["beta2"]                        # v = β2 v + (1 - β2) g²
        xp.multiply(g, g, out=tmp)
        tmp *= 1.0 - c["beta2"]
        v += tmp
        # x -= lr / (1 - β1^t) * m / (sqrt(v / (1 - β2^t)) + eps)
        denom = xp.sqrt(v, out=tmp)
        denom *= c["rbias2"]
        denom += c["eps"]
        update = xp.divide(m, denom, out=denom)
        update *= c["step"]
        x -= update


class AdamW(Adam):
    """Adam with decoupled weight decay: x ← x - lr·wd·x, then the Adam step. Put biases,
    norms and embeddings in a group with weight_decay=0 to exempt them (as nanoGPT does)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 flat=True):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         flat=flat)
