"""GPT: a decoder-only transformer language model (Radford et al. 2018, 2019).

The structure, names and initialisation follow nanoGPT's `model.py`, so a state_dict
lines up with nanoGPT's key for key (`transformer.h.0.attn.c_attn.weight` ...).
Read in order: attention, MLP, Block, config, GPT, sampling.
Shapes: B batch, T time, C = n_embd channels, nh heads, hs = C / nh head size, V vocab.
"""

import math
from dataclasses import dataclass

from tinygen import nn
from tinygen.autograd import is_grad_enabled, no_grad
from tinygen.backend import get_array_module
from tinygen.checks import check_divisible, check_positive, check_probability
from tinygen.creation import as_tensor
from tinygen.models.rope import apply_rope
from tinygen.models.sampling import apply_processors, sample
from tinygen.nn import functional as F
from tinygen.optim.groups import configure_optimizers
from tinygen.tensor import Tensor, cat

__all__ = ["GPT", "GPTConfig", "sample"]  # sample lives in models/sampling.py


def kv_append(cache, k, v):
    """Append this step's keys and values k, v [B, nh, T, hs] to one layer's KV cache (a
    dict) and return all of them so far, [B, nh, t + T, hs]; cache["k"], cache["v"] hold
    them. Under no_grad (generation) they are written into buffers that double in length
    when full, as a Python list grows, so a step copies only its own T keys; concatenating
    copies the whole past every step (O(t²) over a sequence of t). With gradients on,
    concatenation, which autograd follows."""
    if is_grad_enabled():
        if "k" in cache:
            k, v = cat([cache["k"], k], axis=2), cat([cache["v"], v], axis=2)
        cache.pop("k_buffer", None), cache.pop("v_buffer", None)  # no longer what "k" holds
    else:
        t, T = (cache["k"].shape[2] if "k" in cache else 0), k.shape[2]
        if "k_buffer" not in cache or t + T > cache["k_buffer"].shape[2]:
            grow(cache, k.data, t, max(64, 2 * (t + T)))
        kb, vb = cache["k_buffer"], cache["v_buffer"]             # [B, nh, capacity, hs]
        kb[:, :, t:t + T], vb[:, :, t:t + T] = k.data, v.data
        k, v = Tensor(kb[:, :, :t + T]), Tensor(vb[:, :, :t + T])
    cache["k"], cache["v"] = k, v
    return k, v


def grow(cache, k, t, length):
    """New cache buffers [B, nh, length, hs] holding the t keys and values cached so far."""
    B, nh, _, hs = k.shape
    for name in ("k", "v"):
        buffer = get_array_module(k).empty((B, nh, length, hs), k.dtype)
        if t:
            buffer[:, :, :t] = cache[name].data
        cache[name + "_buffer"] = buffer


class CausalSelfAttention(nn.Module):
    is_causal = True  # each position attends to itself and the past (an encoder sets False)

    def __init__(self, config):
        check_divisible(config, "n_embd", "n_head")  # (GPTConfig checks it first)
        # q, k and v for all heads in one projection: one [C, 3C] matmul instead of three
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.rope_base = config.rope_base if config.pos_emb == "rope" else None

    def forward(self, x, cache=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        dropout_p = self.dropout if self.training else 0.0
        if self.rope_base is None and cache is None:  # training: split heads, attend, merge
            y = F.packed_qkv_attention(self.c_attn(x), nh, dropout_p,  # ... in one node
                                       is_causal=self.is_causal and T > 1)
            return self.resid_dropout(self.c_proj(y))
        qkv = self.c_attn(x).reshape(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4)  # [3, B, nh, T, hs]
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.rope_base is not None:  # rotate q, k by their absolute positions
            start = 0 if cache is None or "k" not in cache else cache["k"].shape[2]
            q, k = (apply_rope(t, start, self.rope_base) for t in (q, k))
        if cache is not None:  # generation: append this step's keys/values to the past ones
            k, v = kv_append(cache, k, v)
        # one query after its keys (a cached step) sees them all: no mask to add
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.is_causal and T > 1,
                                           dropout_p=dropout_p)
        y = y.permute(0, 2, 1, 3).reshape(B, T, C)  # re-assemble heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class SwiGLUMLP(nn.Module):
    """SwiGLU feed-forward (Shazeer 2020, "GLU Variants Improve Transformer"; LLaMA):
    c_proj(silu(x W_gate) * (x W_up)), hidden size 8/3 · n_embd (rounded up to a multiple
    of 8) so that its three matrices hold about as many weights as GELU's two of 4 · n_embd.
    W_gate and W_up are one Linear c_fc [2 hidden, C]: one matmul, then F.swiglu (silu of
    the first half times the second, fused: no split, one node)."""

    def __init__(self, config):
        hidden = -(-8 * config.n_embd // 3)            # ⌈8C/3⌉
        hidden = 8 * -(-hidden // 8)                    # up to a multiple of 8
        self.hidden = hidden
        self.c_fc = nn.Linear(config.n_embd, 2 * hidden, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = F.swiglu(self.c_fc(x))          # silu(gate) * up, [B, T, 2 hidden] -> [B, T, hidden]
        return self.dropout(self.c_proj(h))


def make_norm(config):
    """The block's normalisation: LayerNorm (GPT-2) or RMSNorm (Zhang & Sennrich 2019;
    LLaMA), as config.norm says."""
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.n_embd, eps=1e-5)
    return nn.LayerNorm(config.n_embd, bias=config.bias)


class Block(nn.Module):
    """Pre-norm transformer block (GPT-2): x + attn(ln(x)), then x + mlp(ln(x)); ln is
    LayerNorm or RMSNorm, mlp GELU's or SwiGLU's (GPTConfig.norm, GPTConfig.mlp)."""

    def __init__(self, config):
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = make_norm(config)
        self.mlp = SwiGLUMLP(config) if config.mlp == "swiglu" else MLP(config)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


def gpt2_init_(model, n_layer):
    """GPT-2's initialisation, in place: N(0, 0.02) weights, zero biases, and residual
    projections (c_proj) scaled by 1/sqrt(2 n_layer) so the residual stream's variance
    does not grow with depth."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if name.endswith("c_proj"):
            nn.init.normal_(module.weight, 0.0, 0.02 / math.sqrt(2 * n_layer))


@dataclass
class GPTConfig:
    block_size: int = 256   # longest context the model sees (learned positions)
    vocab_size: int = 65    # number of token ids
    n_layer: int = 6        # transformer blocks
    n_head: int = 6         # attention heads per block
    n_embd: int = 384       # channels of the residual stream
    dropout: float = 0.0    # dropout probability in training (0 for small data / CPU)
    bias: bool = True       # biases in Linear and LayerNorm (GPT-2 has them)
    # the modern decoder block (LLaMA's choices), one switch each; the defaults are GPT-2's
    norm: str = "layernorm"  # "layernorm" or "rmsnorm"
    mlp: str = "gelu"        # "gelu" (4C, tanh GELU) or "swiglu"
    pos_emb: str = "learned"  # "learned" (wpe table) or "rope" (rotary, no table)
    rope_base: float = 10000.0  # RoPE's θ base

    def __post_init__(self):
        check_positive(self, "block_size", "vocab_size", "n_layer", "n_head", "n_embd")
        check_divisible(self, "n_embd", "n_head")
        check_probability(self, "dropout")
        for name, allowed in (("norm", ("layernorm", "rmsnorm")), ("mlp", ("gelu", "swiglu")),
                              ("pos_emb", ("learned", "rope"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"GPTConfig: {name} must be one of {allowed}, got "
                                 f"{getattr(self, name)!r}")
        if self.pos_emb == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"GPTConfig: pos_emb='rope' needs an even head size, got "
                             f"n_embd / n_head = {self.n_embd // self.n_head}")


class GPT(nn.Module):
    def __init__(self, config):
        self.config = config
        modules = {"wte": nn.Embedding(config.vocab_size, config.n_embd)}
        if config.pos_emb == "learned":
            modules["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        self.transformer = nn.ModuleDict({
            **modules,
            "drop": nn.Dropout(config.dropout),
            "h": nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            "ln_f": make_norm(config),
        })
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # weight tying (Press & Wolf 2017): the output layer reuses the token embedding
        self.transformer.wte.weight = self.lm_head.weight
        self._init_weights()

    def _init_weights(self):
        gpt2_init_(self, self.config.n_layer)

    def forward(self, idx, targets=None, caches=None):
        """idx [B, T] token ids -> (logits, loss). With targets [B, T], logits are [B, T, V]
        and loss is the mean cross-entropy; without, only the last position's logits
        [B, 1, V] are computed (all that sampling needs). `caches` (one dict per layer)
        turns on the KV cache: idx is then only the new tokens after the cached ones.
        idx and targets are int Tensors (arrays are taken as_tensor)."""
        idx = as_tensor(idx).data
        B, T = idx.shape
        x = self.hidden_states(idx, caches)
        if targets is None:
            return self.lm_head(x[:, -1:, :]), None               # [B, 1, V]
        logits = self.lm_head(x)                                   # [B, T, V]
        targets = as_tensor(targets).reshape(-1)                   # [B * T]
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets, ignore_index=-1)
        return logits, loss

    def hidden_states(self, idx, caches=None):
        """The final hidden states [B, T, C] (after ln_f, before lm_head) for ids idx [B, T];
        reward and value heads read these."""
        idx = as_tensor(idx).data
        T = idx.shape[1]
        start = 0 if caches is None or "k" not in caches[0] else caches[0]["k"].shape[2]
        if start + T > self.config.block_size:
            raise ValueError(f"GPT: {start + T} positions exceed block_size "
                             f"{self.config.block_size}")
        x = self.transformer.wte(idx)                              # [B, T, C]
        if self.config.pos_emb == "learned":
            pos = get_array_module(idx).arange(start, start + T)
            x = x + self.transformer.wpe(pos)                      # + [T, C]
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            x = block(x, None if caches is None else caches[i])
        return self.transformer.ln_f(x)

    def load_state_dict(self, state_dict, strict=True):
        # nanoGPT checkpoints made without flash attention also hold the causal mask as a
        # buffer named attn.bias; it is not a weight, so skip it (as nanoGPT itself does)
        state = {k: v for k, v in state_dict.items()
                 if not k.endswith((".attn.bias", ".attn.masked_bias"))}
        return super().load_state_dict(state, strict)

    @classmethod
    def from_pretrained(cls, name_or_path, dropout=None, mmap=False):
        """GPT-2 weights from a Hugging Face folder (config.json + model.safetensors, or
        shards) or, with huggingface_hub installed, a model id ("gpt2"); see gpt2_hf.
        mmap=True keeps them in a copy-on-write mapping of the file instead of copying."""
        from tinygen.models import gpt2_hf

        return gpt2_hf.from_pretrained(cls, name_or_path, dropout, mmap)

    def save_pretrained(self, path):
        """Write the Hugging Face layout that transformers' GPT2LMHeadModel loads."""
        from tinygen.models import gpt2_hf

        return gpt2_hf.save_pretrained(self, path)

    def configure_optimizers(self, weight_decay, learning_rate, betas, eps=1e-8):
        """AdamW with weight decay on matrices only: biases and LayerNorm gains (1-D) are
        exempt, as in nanoGPT (tinygen.optim.groups). The tied embedding is a matrix and is
        decayed, as there."""
        return configure_optimizers(self, weight_decay, learning_rate, betas, eps)

    @no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 use_cache=True, logits_processor=None):
        """Append max_new_tokens sampled tokens to idx [B, T] (an int Tensor; arrays and
        lists are taken as_tensor); returns the ids [B, T + n], an int64 Tensor on the
        model's device.

        logits_processor: a callable (ids [B, t], logits [B, V]) -> logits [B, V] or a list
        of them, applied in order to each step's next-token logits before temperature,
        top-k and top-p (Hugging Face's LogitsProcessor; see models/sampling.py for
        RepetitionPenalty and MinP).

        With use_cache=True each step feeds only the newest token and reuses the keys and
        values of earlier ones (the KV cache). Once the sequence outgrows block_size the
        learned positions of a sliding window change every step, so from then on each step
        recomputes the last block_size tokens, exactly as generation without a cache does.
        Both ways give the same tokens for the same seed.
        """
        with self.evaluating():
            xp = get_array_module(self.lm_head.weight.data)
            idx = as_tensor(idx, device=self.lm_head.weight.device).data   # [B, T] array
            block = self.config.block_size
            caches = None
            for _ in range(max_new_tokens):
                if use_cache and idx.shape[1] <= block:
                    if caches is None:  # first step: run the whole prompt, filling the caches
                        caches = [{} for _ in self.transformer.h]
                        logits, _ = self(idx, caches=caches)
                    else:
                        logits, _ = self(idx[:, -1:], caches=caches)
                else:
                    logits, _ = self(idx[:, -block:])
                logits = logits[:, -1, :]                                  # [B, V]
                if logits_processor is not None:
                    logits = apply_processors(logits_processor, Tensor(idx), logits)
                next_id = sample(logits, temperature, top_k, top_p).data   # [B]
                idx = xp.concatenate([idx, next_id[:, None]], axis=1)
        return Tensor(idx)
