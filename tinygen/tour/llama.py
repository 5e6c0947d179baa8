"""Tour exercise 16 (stop 8's big one): turn the GPT LLaMA-style, then re-train it.

LLaMA (Touvron et al. 2023, sec. 2.2) changes three things in GPT-2's block:
  RMSNorm (Zhang & Sennrich 2019)   y = x / sqrt(mean(x²) + eps) · weight   (no mean, no bias)
  SwiGLU  (Shazeer 2020)            mlp(x) = c_proj(silu(c_gate(x)) · c_fc(x)), silu = x σ(x)
  RoPE    (Su et al. 2021)          rotate each (x_i, x_{i+hs/2}) pair of q and k by the
                                    angle pos · base^(-2i/hs): q·k then depends only on
                                    the distance between the two positions
Write the three marked pieces; the attention, block and model around them are given.
Check: python -m tinygen.tour check 16; then train it and compare validation loss:
  python demos/gpt.py --text FILE --tokenizer char --model tinygen.tour.llama:LlamaGPT
Shapes: B batch, T time, C channels, nh heads, hs head size.
"""

import numpy as np

from tinygen import nn
from tinygen.backend import get_array_module  # noqa: F401 (rope needs it)
from tinygen.creation import as_tensor
from tinygen.models.gpt import GPT, Block, CausalSelfAttention, gpt2_init_
from tinygen.nn import functional as F
from tinygen.tensor import cat


class RMSNorm(nn.Module):
    def __init__(self, n_embd, eps=1e-5):
        self.weight = nn.Parameter(np.ones(n_embd, dtype=np.float32))   # [C], the gain
        self.eps = eps

    def forward(self, x):                                              # [..., C] -> [..., C]
        raise NotImplementedError("tour exercise 16: x / sqrt(mean(x**2, -1) + eps) * weight")


class SwiGLU(nn.Module):
    def __init__(self, config):
        C = config.n_embd
        hidden = (8 * C // 3 + 7) // 8 * 8   # 2/3 of 4C: three matrices, GPT's parameter count
        self.c_fc = nn.Linear(C, hidden, bias=False)     # "up" (LLaMA's w3)
        self.c_gate = nn.Linear(C, hidden, bias=False)   # "gate" (w1)
        self.c_proj = nn.Linear(hidden, C, bias=False)   # "down" (w2); named so GPT-2's
        self.dropout = nn.Dropout(config.dropout)        # init scales it as a residual

    def forward(self, x):                                              # [B, T, C]
        raise NotImplementedError("tour exercise 16: c_proj(silu(c_gate(x)) * c_fc(x))")


def rope(x, start=0, base=10000.0):
    """x [B, nh, T, hs] at positions start..start+T-1 -> x rotated, same shape."""
    raise NotImplementedError("tour exercise 16: rotate (x[..., :hs/2], x[..., hs/2:]) pairs")


class LlamaAttention(CausalSelfAttention):
    """GPT's attention with RoPE on the queries and keys (given: read how `start` is found,
    so that a KV-cache step rotates its one new token by the right position)."""

    def forward(self, x, cache=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        qkv = self.c_attn(x).reshape(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4)  # [3, B, nh, T, hs]
        q, k, v = qkv[0], qkv[1], qkv[2]
        start = cache["k"].shape[2] if cache is not None and "k" in cache else 0
        q, k = rope(q, start), rope(k, start)      # cached keys are stored already rotated
        if cache is not None:
            if "k" in cache:
                k, v = cat([cache["k"], k], axis=2), cat([cache["v"], v], axis=2)
            cache["k"], cache["v"] = k, v
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.permute(0, 2, 1, 3).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class LlamaBlock(Block):
    """Block with RMSNorm for LayerNorm, SwiGLU for the GELU MLP, RoPE in attention."""

    def __init__(self, config):
        self.ln_1 = RMSNorm(config.n_embd)
        self.attn = LlamaAttention(config)
        self.ln_2 = RMSNorm(config.n_embd)
        self.mlp = SwiGLU(config)


class LlamaGPT(GPT):
    """GPT with LLaMA's three changes; no learned positions (RoPE carries position).
    Train it with the GPT demo: python demos/gpt.py --model tinygen.tour.llama:LlamaGPT"""

    def __init__(self, config):
        super().__init__(config)
        self.transformer.h = nn.ModuleList(LlamaBlock(config) for _ in range(config.n_layer))
        self.transformer.ln_f = RMSNorm(config.n_embd)
        del self.transformer.wpe
        gpt2_init_(self, config.n_layer)

    def hidden_states(self, idx, caches=None):
        idx = as_tensor(idx).data
        start = 0 if caches is None or "k" not in caches[0] else caches[0]["k"].shape[2]
        if start + idx.shape[1] > self.config.block_size:
            raise ValueError(f"LlamaGPT: {start + idx.shape[1]} positions exceed block_size "
                             f"{self.config.block_size}")
        x = self.transformer.drop(self.transformer.wte(idx))       # [B, T, C], no wpe
        for i, block in enumerate(self.transformer.h):
            x = block(x, None if caches is None else caches[i])
        return self.transformer.ln_f(x)
