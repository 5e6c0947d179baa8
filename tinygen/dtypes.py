"""Dtype promotion: which dtype a binary op between two dtypes gives, by PyTorch's rules.

The rules (docs/api_differences.md lists them with examples):
- categories bool < integer < floating; an operand of a higher category wins;
- a Python float meeting a bool/integer tensor gives float32 (the default dtype), a Python
  int meeting a bool tensor gives int64; otherwise a Python number takes the tensor's dtype;
- within one category the larger dtype wins, except that a 0-d tensor never widens a
  tensor with dimensions (float32 tensor + float64 0-d tensor is float32);
- a NumPy/CuPy array mixed with a floating-point tensor is a constant of the tensor's dtype,
  like a Python float: a float64 `np.cos` table never turns a float32 model float64;
- `/` and float math (exp, sin, sqrt, ...) on bool/integer tensors give float32.
Only operands of different dtypes pay for this: same-dtype ops take one comparison.
"""

import numpy as np

_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def promote_types(a, b):
    """PyTorch's result dtype for arrays a, b of different dtypes: the higher category wins;
    in one category a 0-d operand does not widen one with dimensions."""
    ca, cb = _CATEGORY.get(a.dtype.kind), _CATEGORY.get(b.dtype.kind)
    if ca is None or cb is None:  # strings, objects: let the op itself say what is wrong
        return None
    if ca != cb:
        return a.dtype if ca > cb else b.dtype
    if (a.ndim == 0) != (b.ndim == 0):
        return b.dtype if a.ndim == 0 else a.dtype
    return np.promote_types(a.dtype, b.dtype)
