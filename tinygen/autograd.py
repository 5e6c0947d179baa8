"""The autograd engine: `Function` (one node of the graph) and reverse-mode `backward`.

A Function's `forward` and `backward` work on raw arrays (NumPy or CuPy), never on
Tensors, so gradients are first-order: you can differentiate a loss once, not a gradient.
The engine walks the graph in an iterative topological order (no recursion limit), hands
each node the gradient of its output, sums the gradients of tensors used more than once,
and un-broadcasts every gradient to the shape of the input it belongs to.
"""

import contextlib

from tinygen.backend import device_of, get_array_module


class _GradMode:
    enabled = True


def is_grad_enabled():
    return _GradMode.enabled


class _set_grad_mode(contextlib.ContextDecorator):
    mode = True

    def __init__(self):
        self.prev = []  # a stack: the same decorator instance may be entered recursively

    def __enter__(self):
        self.prev.append(_GradMode.enabled)
        _GradMode.enabled = self.mode

    def __exit__(self, *exc):
        _GradMode.enabled = self.prev.pop()


class no_grad(_set_grad_mode):
    """`with tg.no_grad():` (or `@tg.no_grad()`) records no graph: for evaluation and sampling."""

    mode = False


class enable_grad(_set_grad_mode):
    """Turn recording back on inside a no_grad region."""

    mode = True


class Function:
    """One operation in the graph.

    Subclasses write `forward(self, *arrays, **options) -> array` and
    `backward(self, grad) -> grad or tuple of grads` (one per Tensor input, None where
    no gradient flows). Whatever backward needs, forward stores on `self`; the engine
    drops it after backward unless `retain_graph=True`. `self.needs_input_grad[i]` says
    whether input i wants a gradient, so backward can skip work nobody will use.
    """

    inputs = ()
    needs_input_grad = ()
    freed = False

    @classmethod
    def apply(cls, *inputs, **options):
        """Run forward on the inputs' arrays and, if any input requires grad, record it."""
        from tinygen.tensor import Tensor  # tensor.py imports this module

        fn = cls()
        try:
            arrays = [t.data for t in inputs]
            needs_grad = [t.requires_grad for t in inputs]
        except AttributeError:  # something that is not a Tensor (NumPy arrays have .data)
            raise _not_a_tensor(cls, inputs) from None
        _check_same_device(cls, arrays)
        try:
            out = fn.forward(*arrays, **options)
        except (ValueError, TypeError, IndexError) as e:
            shapes = ", ".join(f"{tuple(a.shape)} {a.dtype}" for a in arrays)
            # re-raise as the plain built-in class: NumPy's subclasses take other arguments
            kind = next(k for k in type(e).__mro__ if k in (ValueError, TypeError, IndexError))
            raise kind(f"{cls.__name__.lower()}: {e} (inputs: {shapes})") from None
        if _GradMode.enabled and any(needs_grad):
            fn.inputs = inputs
            fn.needs_input_grad = tuple(needs_grad)
            return Tensor._make(out, fn)
        return Tensor._make(out, None)

    def forward(self, *arrays, **options):
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def backward(self, grad):
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def free(self):
        """Drop the arrays saved for backward (everything but the graph links)."""
        inputs, needs_input_grad = self.inputs, self.needs_input_grad
        self.__dict__.clear()
        self.inputs, self.needs_input_grad, self.freed = inputs, needs_input_grad, True


class HookHandle:
    """What Tensor.register_post_accumulate_grad_hook returns: remove() takes the hook out."""

    __slots__ = ("hook", "hooks")
    registered = False  # set by the first registration: backward skips the lookup until then

    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def _not_a_tensor(cls, inputs):
    """The error for Function.apply given an array, number or list where a Tensor belongs."""
    from tinygen.tensor import Tensor

    i, x = next(((i, x) for i, x in enumerate(inputs) if not isinstance(x, Tensor)),
                (0, inputs[0]))
    kind = f"{type(x).__module__}.{type(x).__qualname__}".replace("builtins.", "")
    return TypeError(
        f"{cls.__name__}.apply: input {i} is a {kind}, not a Tensor. Positional inputs of "
        f"apply are the graph's inputs: wrap it as tg.tensor(...) (requires_grad=True for a "
        f"gradient), or pass a constant as a keyword option, {cls.__name__}.apply(x, name=...)")


def _check_same_device(fn, arrays):
    first = type(arrays[0]) if arrays else None
    for a in arrays:  # cheap test first (a plain loop: no generator per op); scalars differ too
        if type(a) is not first:
            devices = [device_of(a) for a in arrays]
            if len(set(devices)) > 1:
                raise RuntimeError(f"{fn.__name__.lower()}: expected all tensors on one "
                                   f"device, got {', '.join(devices)}")
            return


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`: the backward of NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    grad = grad.sum(axis=axes, keepdims=True) if axes else grad
    return grad.reshape(shape)


def _topological_order(root):
    """Tensors reachable from `root` that need gradients, each after everything it feeds."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        t, children_done = stack.pop()
        if children_done:
            order.append(t)
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:  # the inputs that needed a gradient when the op ran (PyTorch)
            for parent, needed in zip(t._ctx.inputs, t._ctx.needs_input_grad):
                if needed and id(parent) not in visited:
                    stack.append((parent, False))
    return reversed(order)


def _accumulate_flat(t, g):
    """Add g into the .grad of a parameter of an optimizer's flat buffer (optim/flat.py)
    straight in its segment of the flat gradient: one launch (a copy when .grad is None, an
    in-place add when .grad already is the segment, as in gradient accumulation), no
    temporary. False (nothing done) when t is not such a parameter."""
    from tinygen.tensor import Tensor

    view = getattr(t, "_grad_view", None)
    if view is None or t.data is not t._data_view or view.shape != g.shape \
            or view.dtype != g.dtype:
        return False
    old = t.grad
    if old is None:
        view[...] = g
    elif old.data is view:
        view += g
        return True
    else:
        get_array_module(view).add(old.data, g, out=view)
    t.grad = Tensor._make(view, None)  # Parameter._set_grad sees its view: no copy
    return True


def backward(root, grad, retain_graph=False):
    """Propagate `grad` (an array shaped like root) to every leaf that requires grad."""
    from tinygen.tensor import Tensor


    grads = {id(root): grad}
    stored = set()  # arrays already given to a leaf: never alias two leaves' .grad
    for t in _topological_order(root):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        if t._ctx is None or t._retain_grad:
            in_flat = type(t) is not Tensor and _accumulate_flat(t, g)  # a flat Parameter
            if not in_flat:
                if g.base is not None or id(g) in stored or g is grad:
                    g = g.copy()  # a view or shared array: .grad must own its memory
                t.grad = Tensor._make(g, None) if t.grad is None else Tensor._make(
                    t.grad.data + g, None)
            stored.add(id(g))
        fn = t._ctx
        if fn is None:
            if HookHandle.registered:  # the slot stays unset until a hook is registered
                for hook in getattr(t, "_post_accumulate_grad_hooks", None) or ():
                    hook(t)  # t.grad is final for this backward
            continue
        if fn.freed:
            raise RuntimeError(
                f"backward through {type(fn).__name__} a second time: its saved arrays were "
                "freed by the first backward; pass retain_graph=True to the first call")
        gxs = fn.backward(g)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(fn.inputs):
            raise RuntimeError(
                f"{type(fn).__name__}.backward returned {len(gxs)} gradient(s) for "
                f"{len(fn.inputs)} input(s): return one per positional input of apply, in "
                "order, with None where no gradient flows")
        for i, (x, gx, needed) in enumerate(zip(fn.inputs, gxs, fn.needs_input_grad)):
            if gx is None or not needed:
                continue
            try:
                gx = unbroadcast(gx, x.data.shape)
            except (ValueError, IndexError, AttributeError):
                shape = getattr(gx, "shape", type(gx).__name__)
                raise RuntimeError(
                    f"{type(fn).__name__}.backward returned a gradient of shape "
                    f"{tuple(shape) if isinstance(shape, tuple) else shape} for input {i}, "
                    f"whose shape is {tuple(x.data.shape)}: the gradient must have the "
                    "input's shape (or one that broadcasts to it)") from None
            prev = grads.get(id(x))
            grads[id(x)] = gx if prev is None else prev + gx
        if not retain_graph:
            fn.free()

