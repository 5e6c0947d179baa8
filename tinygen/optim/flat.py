"""Flat parameter and gradient buffers: every parameter of an optimizer group that shares a
device and dtype lives in one contiguous array (each parameter's .data a view of it), its
gradients in another, so an optimizer step is a few whole-array operations instead of a
dozen per parameter (on a GPU, a dozen kernel launches per parameter; on the CPU, a dozen
NumPy calls' overhead). Optimizers build them at construction (`flat=True`, the default):

    opt = optim.AdamW(model.parameters(), lr=3e-4)       # params are now views of a buffer
    opt.flat_buffers                                     # [FlatParameters, ...]

A parameter whose .data is re-assigned (`p.data = array`, `module.to(device)`) leaves its
buffer; the optimizer notices at the next step and rebuilds the buffer from the parameters'
current arrays (one copy), so nothing is ever silently lost. A parameter with no gradient in a
step (p.grad is None) makes that buffer's step fall back to the per-parameter loop, which
skips it, exactly as before. state_dict() and checkpoints are unchanged: per-parameter
moments are views of the flat moment buffers, saved one tensor per parameter.
"""

from tinygen.backend import get_array_module


class FlatParameters:
    """params (one device, one dtype) copied into `data` [total]; each p.data is a view of
    its segment, and a gradient assigned to p.grad is copied into the same segment of `grad`.
    """

    def __init__(self, params):
        first = params[0].data
        xp = get_array_module(first)
        sizes = [p.data.size for p in params]
        total = sum(sizes)
        self.params, self.xp = list(params), xp
        self.data = xp.empty(total, dtype=first.dtype)
        self.grad = xp.zeros(total, dtype=first.dtype)
        self.views, self.grad_views, start = [], [], 0
        for p, n in zip(self.params, sizes):
            seg = slice(start, start + n)
            self.data[seg] = p.data.reshape(-1)
            view = self.data[seg].reshape(p.shape)
            p.data = view
            self.views.append(view)
            self.grad_views.append(self.grad[seg].reshape(p.shape))
            p._attach_flat(self, view, self.grad_views[-1])
            start += n

    def intact(self):
        """True while every parameter's .data is still its view of `data`."""
        return all(p.data is v for p, v in zip(self.params, self.views))

    def has_all_grads(self):
        """True when every parameter's .grad is its segment of `grad` (set this step)."""
        return all(p.grad is not None and p.grad.data is g
                   for p, g in zip(self.params, self.grad_views))

    def moment(self, key, flat_state, state):
        """A flat moment buffer for `key` (kept in flat_state) whose per-parameter views are
        state[p][key], copying in whatever per-parameter arrays load_state_dict put there."""
        xp = self.xp
        kept = flat_state.setdefault(id(self), {})
        flat = kept.get(key)
        if flat is None:
            flat = kept[key] = xp.zeros_like(self.data)
        # the views handed out last time, compared by identity (`.base` chains differ
        # between NumPy, CuPy and wrappers, and a copy per parameter per step is what the
        # flat buffer is there to avoid)
        views = kept.setdefault(key + "/views", [None] * len(self.params))
        start = 0
        for i, (p, v) in enumerate(zip(self.params, self.views)):
            s = state.setdefault(p, {})
            current = s.get(key)
            if current is None or current is not views[i]:
                view = flat[start:start + v.size].reshape(v.shape)
                if current is not None:
                    view[...] = current
                s[key] = views[i] = view
            start += v.size
        return flat


def build_flat_buffers(param_groups):
    """One FlatParameters per (group, device, dtype), in group order. Only nn.Parameters
    join one (a plain leaf tensor, or ZeRO-1's shard views of a parameter, must keep its own
    memory); the optimizers' per-parameter loop updates the others."""
    buffers = []
    for gi, group in enumerate(param_groups):
        by_kind = {}
        for p in group["params"]:
            if hasattr(p, "_attach_flat"):
                by_kind.setdefault((p.device, p.dtype), []).append(p)
        for params in by_kind.values():
            buf = FlatParameters(params)
            buf.group = gi
            buffers.append(buf)
    return buffers
