"""Check an analytic gradient against central differences, for anyone adding an op."""

import numpy as np

from tinygen.autograd import no_grad
from tinygen.backend import get_array_module, to_numpy
from tinygen.tensor import Tensor


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Compare backward() with (f(x + eps) - f(x - eps)) / 2 eps for every input element.

    `inputs` are tensors; those with requires_grad=True are checked (use float64: float32
    differences are too coarse). A non-scalar output is reduced with fixed random weights,
    sum(out * w), so every output element takes part. Returns True, or raises
    AssertionError naming the input, the worst element and both gradients.
    """
    inputs = list(inputs)
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for t in checked:
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: inputs should be float64, got {t.dtype}")
    out = fn(*inputs)
    xp = get_array_module(out.data)
    weights = xp.asarray(np.random.default_rng(seed).standard_normal(out.shape))

    def loss_value():
        with no_grad():
            return float((fn(*inputs).data * weights).sum())

    for t in checked:
        t.grad = None
    (out * Tensor(weights)).sum().backward()
    for k, t in enumerate(checked):
        analytic = to_numpy(t.grad.data) if t.grad is not None else np.zeros(t.shape)
        numeric = np.zeros(t.shape)
        for i in np.ndindex(*t.shape):  # perturb the input's own array, element by element
            orig = t.data[i].item()
            t.data[i] = orig + eps
            plus = loss_value()
            t.data[i] = orig - eps
            minus = loss_value()
            t.data[i] = orig
            numeric[i] = (plus - minus) / (2 * eps)
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        err = np.where(np.isfinite(err), err, np.inf)  # a NaN gradient fails too
        if err.size and err.max() > 0:
            i = np.unravel_index(err.argmax(), err.shape)
            raise AssertionError(
                f"gradcheck: input {k} (shape {t.shape}) at index {tuple(int(j) for j in i)}: "
                f"analytic {analytic[i]:.6g} vs numeric {numeric[i]:.6g}")
    return True
