"""Stochastic gradient descent with momentum (PyTorch's formulation)."""

from tinygen.backend import get_array_module
from tinygen.optim.optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening 0")
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov})

    def step(self):
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                if wd:
                    g = g + wd * p.data
                if mu:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:  # buf = mu * buf + (1 - dampening) * g
                        buf = state["momentum_buffer"] = get_array_module(g).array(g)
                    else:
                        buf *= mu
                        buf += (1 - group["dampening"]) * g
                    g = g + mu * buf if group["nesterov"] else buf
                p.data -= lr * g
