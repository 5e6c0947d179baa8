"""The Optimizer base class: parameter groups, per-parameter state, state_dict."""

from tinygen.backend import to_device, to_numpy
from tinygen.optim.flat import build_flat_buffers
from tinygen.tensor import Tensor


class Optimizer:
    """Holds `param_groups` (each a dict of hyperparameters plus "params") and `state`
    (per parameter: step counts and moment buffers). Subclasses write `step()`."""

    def __init__(self, params, defaults, flat=True):
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: expects an iterable of tensors or of "
                            "parameter-group dicts, got a single Tensor")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        seen = set()
        for g in groups:
            unknown = set(g) - set(defaults) - {"params"}
            if unknown:
                raise ValueError(f"{type(self).__name__}: unknown option(s) {sorted(unknown)} "
                                 "in a parameter group")
            group = {**defaults, **g, "params": list(g["params"])}
            for p in group["params"]:
                if not isinstance(p, Tensor) or not p.requires_grad:
                    raise TypeError(f"{type(self).__name__}: can only optimise tensors that "
                                    "require grad")
                if id(p) in seen:
                    raise ValueError(f"{type(self).__name__}: a parameter appears in more "
                                     "than one group (it would be updated twice per step)")
                seen.add(id(p))
            self.param_groups.append(group)
        self.state = {}  # Parameter -> dict
        # flat buffers (optim/flat.py): a few whole-array operations per step
        self.flat_buffers = build_flat_buffers(self.param_groups) if flat else []
        self._flat_state = {}  # id(FlatParameters) -> {moment name: flat array}

    def _flat_ready(self):
        """The flat buffers whose step can run on whole arrays this time: rebuilt if a
        parameter's .data was re-assigned, skipped if a parameter has no gradient or the
        parameters' step counts differ (then the per-parameter loop does them)."""
        ready = []
        for i, buf in enumerate(self.flat_buffers):
            if not buf.intact():
                for new in build_flat_buffers([{"params": buf.params}]):
                    new.group = buf.group
                    self.flat_buffers[i] = buf = new
                    break
            if not buf.intact() or not buf.has_all_grads():
                continue
            if len({self.state.get(p, {}).get("step", 0) for p in buf.params}) != 1:
                continue
            ready.append(buf)
        return ready

    def zero_grad(self, set_to_none=True):
        """Forget the gradients before the next backward. As in PyTorch (whose default is
        also set_to_none=True), each .grad becomes None: no kernel at all, and the next
        backward writes each flat parameter's gradient straight into its segment of the
        flat gradient buffer. set_to_none=False zeroes the gradients instead (None ones
        stay None), each flat buffer with one fill."""
        filled = set()
        if not set_to_none:
            for buf in self.flat_buffers:
                held = [p for p, g in zip(buf.params, buf.grad_views)
                        if p.grad is not None and p.grad.data is g]
                if held:
                    buf.grad.fill(0)  # one launch for the whole buffer
                    filled.update(id(p) for p in held)
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None and id(p) not in filled:
                    p.grad.data.fill(0)

    def set_lr(self, lr):
        """Set the learning rate of every parameter group to `lr` (what a schedule does
        each step; PyTorch spells it `for g in opt.param_groups: g["lr"] = lr`)."""
        if not lr >= 0:  # `not >=` also catches NaN
            raise ValueError(f"{type(self).__name__}.set_lr: lr={lr}: must be >= 0")
        for group in self.param_groups:
            group["lr"] = lr

    def step(self):
        raise NotImplementedError(f"{type(self).__name__} must define step")

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self):
        """PyTorch's layout: state keyed by the parameter's position across all groups,
        and the groups' hyperparameters with "params" as those positions."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[id(p)]: {k: (Tensor._make(v, None) if hasattr(v, "shape") else v)
                                for k, v in s.items()}
                 for p, s in self.state.items()}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        params = self._params()
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(own["params"])
                for g, own in zip(groups, self.param_groups)):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved parameter "
                             "groups do not match this optimizer's")
        for g, own in zip(groups, self.param_groups):
            own.update({k: (tuple(v) if isinstance(v, list) else v)
                        for k, v in g.items() if k != "params"})
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            self.state[p] = {k: self._array(v, p) for k, v in s.items()}

    @staticmethod
    def _array(value, p):
        if isinstance(value, Tensor):
            value = value.data
        if hasattr(value, "shape") and value.shape == p.shape:
            return to_device(to_numpy(value), p.device).astype(p.dtype)
        return value
