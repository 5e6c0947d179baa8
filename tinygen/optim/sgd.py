"""Stochastic gradient descent with momentum (PyTorch's formulation)."""

from tinygen.backend import get_array_module
from tinygen.optim.optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, flat=True):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening 0")
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov}, flat=flat)

    def step(self):
        done = set()
        for flat in self._flat_ready():  # whole buffers: the same arithmetic, one call each
            group = self.param_groups[flat.group]
            buf, first = None, False
            if group["momentum"]:
                first = self.state.get(flat.params[0], {}).get("momentum_buffer") is None
                buf = flat.moment("momentum_buffer", self._flat_state, self.state)
            self._update(flat.data, flat.grad, group, buf, first)
            done.update(id(p) for p in flat.params)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or id(p) in done:
                    continue
                buf, first = None, False
                if group["momentum"]:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = get_array_module(p.data).empty_like(
                            p.data)
                        first = True
                self._update(p.data, p.grad.data, group, buf, first)

    @staticmethod
    def _update(x, g, group, buf, first=False):
        """One SGD step in place on x (and the momentum buffer) from the gradient g."""
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        if wd:
            g = g + wd * x
        if mu:
            if first:  # buf = g on the first step, then buf = mu * buf + (1 - dampening) * g
                buf[...] = g
            else:
                buf *= mu
                buf += (1 - group["dampening"]) * g
            g = g + mu * buf if group["nesterov"] else buf
        x -= lr * g
