"""Rotary position embeddings, RoPE (Su et al. 2021, "RoFormer", eq. 34).

Each pair of channels of a query or key at position m is rotated by the angle m θᵢ with
θᵢ = base^(-2i/hs), so that q·k depends only on the distance between the two positions.
Channels are paired as (i, i + hs/2), the "rotate half" layout of GPT-NeoX and LLaMA in
Hugging Face transformers: x' = x cos + rotate_half(x) sin, rotate_half(x) = [-x₂, x₁].
No parameters: cos and sin are computed for the positions asked for, on x's device.
"""

from tinygen.backend import get_array_module
from tinygen.tensor import Tensor, cat


def rope_tables(xp, start, T, hs, base, dtype):
    """cos, sin [T, hs] for positions start .. start + T - 1."""
    inv_freq = base ** (-xp.arange(0, hs, 2, dtype=xp.float64) / hs)        # [hs/2] θᵢ
    angles = xp.arange(start, start + T, dtype=xp.float64)[:, None] * inv_freq  # [T, hs/2]
    angles = xp.concatenate([angles, angles], axis=1)                        # [T, hs]
    return xp.cos(angles).astype(dtype), xp.sin(angles).astype(dtype)


def apply_rope(x, start=0, base=10000.0):
    """x [..., T, hs] (hs even) rotated for positions start .. start + T - 1."""
    T, hs = x.shape[-2], x.shape[-1]
    if hs % 2:
        raise ValueError(f"apply_rope: the head size must be even, got {hs}")
    cos, sin = rope_tables(get_array_module(x.data), start, T, hs, base, x.dtype)
    x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
    rotated = cat([-x2, x1], axis=-1)                                        # rotate_half
    return x * Tensor(cos) + rotated * Tensor(sin)
