"""A DALL·E-style text-to-image model (Ramesh et al. 2021, "Zero-Shot Text-to-Image
Generation"), in two stages, small enough to train on a laptop CPU.

Stage 1, a discrete image tokenizer: the VQ-VAE of tinygen.models.vqvae turns a 32x32
image into an 8x8 grid of codebook ids, 64 integers ("image tokens"), and back.

Stage 2, a prior over tokens: the GPT of tinygen.models.gpt, reading one sequence of text
tokens followed by image tokens,

    <bos> a small red circle at the top left <eot> <pad> | i_0 i_1 ... i_63
    \\_____________ text_len = 10 word ids ____________/   \\_ 64 code ids + text_vocab _/

and trained to predict each image token from everything before it. To draw an image for a
caption: feed the caption, sample 64 image tokens one at a time (temperature, top-k),
decode them with the VQ-VAE. DALL·E then draws N images and keeps those that CLIP rates as
the best match to the caption (reranking, section 2.5 of the paper): `rerank` below.

Read in order: the prior and reranking (the VQ-VAE is in models/vqvae.py).
Shapes: B batch, h x w the token grid, K n_codes, T tokens.
"""

from dataclasses import dataclass

import numpy as np

from tinygen import nn
from tinygen.autograd import no_grad
from tinygen.backend import get_array_module
from tinygen.checks import check_divisible, check_positive, check_probability
from tinygen.creation import as_tensor
from tinygen.models.gpt import GPT, GPTConfig, sample
from tinygen.models.vqvae import (  # noqa: F401  (stage 1, importable from here as before)
    VQVAE,
    VectorQuantizer,
    VQVAEConfig,
    codebook_usage,
    perplexity,
)
from tinygen.tensor import Tensor


# ---- stage 2: the prior, a GPT over text then image tokens ----------------------------------
@dataclass
class DALLEConfig:
    text_vocab: int = 25     # word ids 0 .. text_vocab - 1 (tinygen.data.shapes tokenizer)
    text_len: int = 10       # text tokens per caption, padded
    n_codes: int = 128       # image-token vocabulary (the VQ-VAE's K)
    image_tokens: int = 64   # h * w tokens per image
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0

    def __post_init__(self):
        check_positive(self, "text_vocab", "text_len", "n_codes", "image_tokens", "n_layer",
                       "n_head", "n_embd")
        check_divisible(self, "n_embd", "n_head")
        check_probability(self, "dropout")


class DALLE(nn.Module):
    """The GPT over one shared vocabulary: word ids first, then image code c as id
    text_vocab + c. One embedding table and one output layer serve both kinds of token."""

    def __init__(self, config):
        self.config = c = config
        self.gpt = GPT(GPTConfig(block_size=c.text_len + c.image_tokens,
                                 vocab_size=c.text_vocab + c.n_codes, n_layer=c.n_layer,
                                 n_head=c.n_head, n_embd=c.n_embd, dropout=c.dropout))

    def layout(self, text_ids, image_tokens):
        """The training sequence: text ids [B, text_len] then image tokens [B, image_tokens]
        shifted past the text vocabulary -> int Tensor [B, text_len + image_tokens], on the
        model's device."""
        c = self.config
        device = self.gpt.lm_head.weight.device
        image_tokens = as_tensor(image_tokens, device=device).data
        text_ids = as_tensor(text_ids, device=device).data
        xp = get_array_module(image_tokens)
        if text_ids.shape[1] != c.text_len or image_tokens.shape[1] != c.image_tokens:
            raise ValueError(f"DALLE.layout: expects text [B, {c.text_len}] and image tokens "
                             f"[B, {c.image_tokens}], got {tuple(text_ids.shape)} and "
                             f"{tuple(image_tokens.shape)}")
        return Tensor(xp.concatenate([text_ids, image_tokens + c.text_vocab], axis=1))

    def forward(self, text_ids, image_tokens):
        """The mean cross-entropy of each image token given the caption and the image tokens
        before it. Text tokens are inputs only (their targets are ignored): the caption is
        always given when drawing, so only p(image | text) needs to be learned. (DALL·E also
        models the text, with 1/8 of the loss weight.)"""
        tokens = self.layout(text_ids, image_tokens).data
        targets = tokens[:, 1:].copy()
        targets[:, :self.config.text_len - 1] = -1                     # -1: no loss there
        _, loss = self.gpt(tokens[:, :-1], targets)
        return loss

    @no_grad()
    def generate(self, text_ids, temperature=1.0, top_k=None):
        """Sample image tokens, an int Tensor [B, image_tokens], for captions text_ids
        [B, text_len]: one token at a time with the KV cache, each drawn among image codes
        only (text ids are masked out), with the given temperature and top-k."""
        c = self.config
        with self.evaluating():
            device = self.gpt.lm_head.weight.device
            xp = get_array_module(self.gpt.lm_head.weight.data)
            caches = [{} for _ in self.gpt.transformer.h]
            text_ids = as_tensor(text_ids, dtype=np.int64, device=device)
            logits, _ = self.gpt(text_ids, caches=caches)
            out = []
            for i in range(c.image_tokens):
                code = sample(logits.data[:, -1, c.text_vocab:], temperature, top_k).data  # [B]
                out.append(code)
                if i + 1 < c.image_tokens:
                    logits, _ = self.gpt((code + c.text_vocab)[:, None], caches=caches)
        return Tensor(xp.stack(out, axis=1))


# ---- reranking ------------------------------------------------------------------------------
def rerank(clip_model, tokenizer, images, caption):
    """DALL·E's reranking: order images [N, 3, S, S] best first by the cosine that CLIP
    gives between each image and the caption. Returns (order, an int Tensor [N], and the
    scores [N]), on the CPU."""
    from tinygen.models.clip import embed_images, embed_texts

    text_embed = embed_texts(clip_model, tokenizer, [caption]).numpy()[0]          # [D]
    scores = embed_images(clip_model, images).numpy() @ text_embed                 # [N]
    return Tensor(np.argsort(-scores, kind="stable")), Tensor(scores)



