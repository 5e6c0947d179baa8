"""CLIP: contrastive language–image pre-training (Radford et al. 2021, "Learning Transferable
Visual Models From Natural Language Supervision").

Two encoders map an image and a caption into one shared space of unit vectors; training pulls
each image towards its own caption and pushes it from the other captions in the batch (the
symmetric cross-entropy of the paper's Figure 3). Afterwards any text is a classifier:
embed "a photo of a {label}" for every label and pick the nearest (zero-shot classification).

- Image encoder, CLIPConfig.vision:
  "conv" (the default): a small conv net — 3x3 Conv2d + BatchNorm + ReLU, stride-2 stages
  from 32x32 to 4x4, then the mean over positions (CLIP's own ResNets end in a pooling too).
  A convolution has the same filters at every position, and the pooled features do not
  care where a shape was seen, so a circle detector learnt from green and blue circles
  answers to red ones as well: the compositional generalisation the zero-shot test asks
  for (its stem shares its filters across colours too: ConvNet). On demos/clip.py's
  held-out pairs it beats the ViT below at a similar cost per step (README).
  "vit": a small Vision Transformer (Dosovitskiy et al. 2021) — patches -> linear patch
  embedding, a learned [class] token and positions, then the *same* pre-LN transformer
  blocks as the GPT (tinygen.models.gpt.Block) with attention made non-causal: one block
  serves text and images alike. It learns the seen pairs well but takes a held-out
  circle for a square of the same colour: with no weight sharing beyond the patch, what it
  learns of "circle" stays tied to the colours it saw circles in.
- Text encoder: the GPT's causal blocks over word tokens; the caption's summary is the final
  LayerNorm's output at the end-of-text token (as in CLIP, whose text encoder is a GPT-2).
- Linear projections (no bias) into the shared space, L2-normalised; a learned temperature
  `logit_scale` = log(1/τ), initialised to ln(1/0.07) and clamped at ln 100 (Section 2.5).

Read in order: the non-causal block, config, encoders, CLIP, clip_loss, train_clip (the
training loop, shared by demos/clip.py and anyone who needs a CLIP), then evaluation
(zero-shot classification, retrieval R@1, captioning by retrieval).
Shapes: B batch, T tokens, C channels, D = embed_dim, K classes or candidate captions.
"""

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np

from tinygen import nn
from tinygen.autograd import no_grad
from tinygen.backend import get_array_module, to_device, to_numpy
from tinygen.checks import check_choice, check_divisible, check_positive, check_probability
from tinygen.creation import as_tensor
from tinygen.models.gpt import Block, CausalSelfAttention, GPTConfig, gpt2_init_
from tinygen.nn import functional as F
from tinygen.optim.groups import configure_optimizers
from tinygen.tensor import Tensor, cat, stack

LOGIT_SCALE_INIT = math.log(1 / 0.07)  # temperature τ = 0.07 at the start (CLIP Section 2.5)
LOGIT_SCALE_MAX = math.log(100)        # "clipped to prevent scaling the logits by more than 100"


# ---- a non-causal transformer block for images ----------------------------------------------
class SelfAttention(CausalSelfAttention):
    """The GPT's attention with every patch seeing every other patch (no causal mask)."""

    is_causal = False


class EncoderBlock(Block):
    """gpt.Block (pre-LN: x + attn(ln(x)), x + mlp(ln(x))) with non-causal attention."""

    def __init__(self, config):
        super().__init__(config)
        self.attn = SelfAttention(config)


# ---- config ---------------------------------------------------------------------------------
@dataclass
class CLIPConfig:
    embed_dim: int = 64          # D, the shared image–text space
    # image encoder
    vision: str = "conv"         # "conv" (ConvNet) or "vit" (VisionTransformer)
    image_size: int = 32         # square RGB images [B, 3, image_size, image_size]
    patch_size: int = 4          # vit: (32 / 4)^2 = 64 patches
    vision_layers: int = 3       # conv: stride-2 stages; vit: transformer blocks (2 is good)
    vision_heads: int = 4        # vit only
    vision_width: int = 64       # C: the ViT's width, the conv net's last stage's channels
    # text encoder (causal transformer)
    vocab_size: int = 25
    context_length: int = 10     # tokens per caption, <bos> ... <eot> <pad> ...
    text_layers: int = 2
    text_heads: int = 4
    text_width: int = 64         # C of the text transformer
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self):
        check_choice(self, "vision", ("conv", "vit"))
        check_positive(self, "embed_dim", "image_size", "patch_size", "vision_layers",
                       "vision_heads", "vision_width", "vocab_size", "context_length",
                       "text_layers", "text_heads", "text_width")
        check_divisible(self, "text_width", "text_heads")
        if self.vision == "vit":
            check_divisible(self, "vision_width", "vision_heads")
            check_divisible(self, "image_size", "patch_size")
        check_probability(self, "dropout")


def _block_config(width, heads, layers, config, block_size):
    return GPTConfig(block_size=block_size, n_layer=layers, n_head=heads, n_embd=width,
                     dropout=config.dropout, bias=config.bias)


# ---- encoders -------------------------------------------------------------------------------
class VisionTransformer(nn.Module):
    """images [B, 3, S, S] -> features [B, C] at the [class] token."""

    def __init__(self, config):
        p, C = config.patch_size, config.vision_width
        check_divisible(config, "image_size", "patch_size")  # (CLIPConfig checks it first)
        n_patches = (config.image_size // p) ** 2
        self.patch_size = p
        # a Linear on flattened p x p patches: the same map as Conv2d(3, C, p, stride=p)
        self.patch_embed = nn.Linear(3 * p * p, C, bias=False)
        self.class_embedding = nn.Parameter(np.zeros(C, np.float32))
        self.positional_embedding = nn.Parameter(np.zeros((n_patches + 1, C), np.float32))
        self.ln_pre = nn.LayerNorm(C, bias=config.bias)
        block = _block_config(C, config.vision_heads, config.vision_layers, config, n_patches + 1)
        self.blocks = nn.ModuleList(EncoderBlock(block) for _ in range(config.vision_layers))
        self.ln_post = nn.LayerNorm(C, bias=config.bias)

    def forward(self, images):
        B, _, S, _ = images.shape
        p, g = self.patch_size, S // self.patch_size  # g x g patches
        x = images.reshape(B, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5)  # [B, g, g, 3, p, p]
        x = self.patch_embed(x.reshape(B, g * g, 3 * p * p))            # [B, g*g, C]
        cls = self.class_embedding.reshape(1, 1, -1).expand(B, 1, x.shape[-1])
        x = cat([cls, x], axis=1) + self.positional_embedding           # [B, T = g*g + 1, C]
        x = self.ln_pre(x)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x[:, 0, :])                                 # [B, C]


class ConvNet(nn.Module):
    """images [B, 3, S, S] -> features [B, C]: a colour-shared stem, then `vision_layers`
    stages of 3x3 Conv2d (stride 2) + BatchNorm + ReLU, each halving S and doubling the
    channels up to C, and a global average pool.

    The stem is one Conv2d(1, c0, 3) run over R, G and B as three grey images: the same
    filters for every colour channel, as a convolution has the same filters at every
    position. An edge or corner detector learnt on green circles then exists, unchanged, for
    red ones, and the stages after it see "which shape" and "which colour" side by side
    ([B, 3 c0, S, S]: c0 maps per colour channel): a little held-out zero-shot accuracy
    over a plain Conv2d(3, 3 c0, 3) stem in demos/clip.py (README)."""

    def __init__(self, config):
        L, C = config.vision_layers, config.vision_width
        c0 = max(C >> L, 4)                               # stem filters per colour channel
        widths = [3 * c0] + [C >> (L - k) for k in range(1, L + 1)]  # ..., C/4, C/2, C
        self.stem = nn.Conv2d(1, c0, 3, padding=1)
        layers = [nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out),
                       nn.ReLU()]
        self.stages = nn.Sequential(*layers)

    def forward(self, images):
        # the stem on R, G, B as grey images = 3 conv groups sharing one kernel: the maps
        # stay batch-last, no reshaping copy read out of order after it (step 88 -> 50 ms)
        w, b = self.stem.weight, self.stem.bias
        x = F.conv2d(images, w.repeat(3, 1, 1, 1), b.repeat(3), padding=1, groups=3)
        x = self.stages(x)                                              # [B, C, S/2^L, S/2^L]
        # the mean over positions: zero padding at the borders still lets the features say
        # where the shape is (retrieval needs "top left")
        return x.mean(axis=(2, 3))                                      # [B, C]


class TextTransformer(nn.Module):
    """token ids [B, T] and the position of each <eot> [B] -> features [B, C] at <eot>.
    Attention is causal, as in CLIP, so <pad> tokens after <eot> never reach it."""

    def __init__(self, config):
        C = config.text_width
        self.token_embedding = nn.Embedding(config.vocab_size, C)
        self.positional_embedding = nn.Parameter(np.zeros((config.context_length, C),
                                                          np.float32))
        block = _block_config(C, config.text_heads, config.text_layers, config,
                              config.context_length)
        self.blocks = nn.ModuleList(Block(block) for _ in range(config.text_layers))
        self.ln_final = nn.LayerNorm(C, bias=config.bias)

    def forward(self, ids, eot):
        B, T = ids.shape
        x = self.token_embedding(ids) + self.positional_embedding[:T]   # [B, T, C]
        for block in self.blocks:
            x = block(x)
        x = self.ln_final(x)
        xp = get_array_module(x.data)
        return x[xp.arange(B), to_device(eot, x.device)]                # [B, C]


def normalize(x):
    """Rows of x scaled to unit length: x / ||x||, so dot products are cosine similarities."""
    return x / ((x * x).sum(axis=-1, keepdims=True) + 1e-12).sqrt()


# ---- the model ------------------------------------------------------------------------------
class CLIP(nn.Module):
    def __init__(self, config):
        self.config = config
        self.visual = (ConvNet if config.vision == "conv" else VisionTransformer)(config)
        self.text = TextTransformer(config)
        self.visual_projection = nn.Linear(config.vision_width, config.embed_dim, bias=False)
        self.text_projection = nn.Linear(config.text_width, config.embed_dim, bias=False)
        # shape [1] rather than []: optim.Adam's in-place update needs an array, and a 0-d
        # NumPy product (g * g) comes back as a scalar
        self.logit_scale = nn.Parameter(np.full(1, LOGIT_SCALE_INIT, np.float32))
        self._init_weights()

    def _init_weights(self):
        """GPT-2's N(0, 0.02) for weights and positions, zero biases; residual projections
        scaled by 1/sqrt(2 n_layer); projections to the shared space N(0, width^-1/2)."""
        gpt2_init_(self, max(self.config.vision_layers, self.config.text_layers, 1))
        vit = self.config.vision == "vit"
        for p in ((self.visual.positional_embedding, self.visual.class_embedding) if vit
                  else ()) + (self.text.positional_embedding,):
            nn.init.normal_(p, 0.0, 0.02)
        nn.init.normal_(self.visual_projection.weight, 0.0, self.config.vision_width ** -0.5)
        nn.init.normal_(self.text_projection.weight, 0.0, self.config.text_width ** -0.5)

    def encode_image(self, images):
        """images [B, 3, S, S] -> image_embeds [B, D], unit length."""
        images = as_tensor(images, device=self.logit_scale.device)
        return normalize(self.visual_projection(self.visual(images)))

    def encode_text(self, ids, eot):
        """token ids [B, T], <eot> positions [B] -> text_embeds [B, D], unit length."""
        ids = as_tensor(ids, device=self.logit_scale.device).data
        return normalize(self.text_projection(self.text(ids, eot)))

    def forward(self, images, ids, eot):
        """A batch of matching pairs -> (image_embeds [B, D], text_embeds [B, D], loss)."""
        image_embeds, text_embeds = self.encode_image(images), self.encode_text(ids, eot)
        return image_embeds, text_embeds, clip_loss(image_embeds, text_embeds, self.logit_scale)

    def clamp_logit_scale(self):
        """Call after each optimizer step: keep logit_scale in [0, ln 100] (open_clip does
        the same), so the logits are never scaled by more than 100."""
        xp = get_array_module(self.logit_scale.data)
        xp.clip(self.logit_scale.data, 0.0, LOGIT_SCALE_MAX, out=self.logit_scale.data)

    def configure_optimizers(self, weight_decay, learning_rate, betas, eps=1e-8):
        """AdamW, decaying matrices only (not biases, gains or logit_scale), as in the GPT
        (tinygen.optim.groups)."""
        return configure_optimizers(self, weight_decay, learning_rate, betas, eps)


def clip_loss(image_embeds, text_embeds, logit_scale):
    """The symmetric contrastive loss (CLIP, Figure 3). With unit-length embeddings [B, D]:

        logits[i, j] = exp(logit_scale) * <image_embeds[i], text_embeds[j]>   [B, B]
        loss = (cross_entropy(logits, labels) + cross_entropy(logitsᵀ, labels)) / 2

    where labels = 0..B-1: image i's caption is text i (rows: image -> text, columns:
    text -> image)."""
    logits = logit_scale.exp() * (image_embeds @ text_embeds.T)        # [B, B]
    labels = get_array_module(logits.data).arange(logits.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


# ---- training -------------------------------------------------------------------------------
def train_clip(model, data, tokenizer, *, max_iters, batch_size=128, learning_rate=1e-3,
               min_lr=1e-4, warmup_iters=50, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6,
               grad_clip=1.0, seed=0, device="cpu", log_interval=100, log=print):
    """Train `model` on the image–caption pairs of `data` (a tinygen.data.shapes.ShapesData)
    with CLIP's recipe: AdamW (betas (0.9, 0.98)), linear warmup then cosine decay to min_lr,
    gradient clipping (grad_clip=0 turns it off), and logit_scale clamped after each step.
    Minibatches are drawn in a shuffled order from np.random.default_rng(seed); each batch
    keeps one pair per distinct caption, since two images with the same caption would each
    be the other's false negative. Moves the model to `device`; `log` gets one line every
    `log_interval` steps (log=None: silent).

    Returns {"final_loss", "ms_per_iter", "iters", "seconds", "optimizer", "losses"} (the
    loss of every step). The images and token ids go to the device once and each batch is
    gathered there; the losses stay on the device until a log line (or the end) reads them
    in one transfer, so a step has no host sync."""
    from tinygen.data.loader import minibatch_steps
    from tinygen.optim import clip_grad_norm_
    from tinygen.optim.lr_scheduler import warmup_cosine

    model.to(device)
    model.train()
    optimizer = model.configure_optimizers(weight_decay, learning_rate, betas, eps)
    batch_rng = np.random.default_rng(seed)  # the order of the minibatches
    ids, eot = tokenizer.encode_batch(data.captions, model.config.context_length)
    caption_id = np.unique(data.captions, return_inverse=True)[1]  # which distinct caption
    n = len(data.captions)
    all_images = Tensor(data.images, device=device)                  # [N, 3, S, S], once
    ids, eot = Tensor(ids, device=device), Tensor(eot, device=device)
    loss_value, train_time, losses, pending, t0 = float("nan"), 0.0, [], [], None
    for it, idx in minibatch_steps(n, min(batch_size, n), max_iters, batch_rng):
        lr = warmup_cosine(it, learning_rate, min_lr, warmup_iters, max_iters)
        optimizer.set_lr(lr)
        idx = idx[np.unique(caption_id[idx], return_index=True)[1]]  # ~100 of 128 left
        t0 = time.time() if t0 is None else t0
        _, _, loss = model(all_images[idx], ids[idx], eot[idx].data)
        optimizer.zero_grad()
        loss.backward()
        if grad_clip:
            clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        model.clamp_logit_scale()  # temperature never below 1/100 (CLIP Section 2.5)
        pending.append(loss.detach())
        if not (it % log_interval == 0 or it == max_iters - 1):
            continue
        values = stack(pending).numpy().tolist()  # waits for the GPU: honest timing
        train_time += time.time() - t0
        losses, pending, t0, loss_value = losses + values, [], None, values[-1]
        if not all(math.isfinite(v) for v in values):
            raise FloatingPointError(f"train_clip: the loss became {loss_value} by step {it}")
        if log is not None:
            log(f"iter {it}: loss {loss_value:.4f}, logit_scale "
                f"{model.logit_scale.item():.2f}, lr {lr:.2e}, "
                f"{train_time / (it + 1) * 1000:.0f} ms/iter")
    iters = len(losses)
    return {"final_loss": loss_value, "ms_per_iter": 1000 * train_time / max(iters, 1),
            "iters": iters, "seconds": train_time, "optimizer": optimizer, "losses": losses}


# ---- evaluation: Tensors on the model's device; only metrics and captions come to the host --
@no_grad()
def embed_images(model, images, batch_size=500):
    """image_embeds [N, D] of images [N, 3, S, S] (a Tensor or array), a Tensor on the
    model's device (eval mode, in batches)."""
    with model.evaluating():
        return cat([model.encode_image(images[i:i + batch_size])
                    for i in range(0, len(images), batch_size)])


@no_grad()
def embed_texts(model, tokenizer, texts, batch_size=500):
    """text_embeds [N, D] of a list of N strings, a Tensor on the model's device."""
    out = []
    with model.evaluating():
        for i in range(0, len(texts), batch_size):
            ids, eot = tokenizer.encode_batch(texts[i:i + batch_size],
                                              model.config.context_length)
            out.append(model.encode_text(ids, eot))
    return cat(out)


@no_grad()
def zero_shot_classifier(model, tokenizer, class_prompts):
    """One unit vector per class [K, D] from K lists of prompts: the mean of the prompts'
    text_embeds, renormalised (CLIP's prompt ensembling, Section 3.1.4). A Tensor [K, D] on
    the model's device."""
    means = [embed_texts(model, tokenizer, list(prompts)).mean(axis=0)
             for prompts in class_prompts]
    return normalize(stack(means))


def _scale(logit_scale):
    return math.exp(as_tensor(logit_scale).item())   # a float or a 0-d/[1] Tensor


@no_grad()
def zero_shot_marginal(image_embeds, caption_embeds, caption_class, n_classes, logit_scale):
    """Class probabilities [N, n_classes] (a Tensor on image_embeds' device) from a softmax
    over every candidate caption [K, D] at the model's temperature, each class collecting
    its captions' probability (caption_class [K] int): what a class does not name is summed
    out, not averaged into one prompt."""
    image_embeds = as_tensor(image_embeds)
    caption_embeds = as_tensor(caption_embeds, like=image_embeds)
    caption_class = as_tensor(caption_class, device=image_embeds.device).data
    probs = (_scale(logit_scale) * (image_embeds @ caption_embeds.T)).softmax(axis=1)  # [N, K]
    onehot = get_array_module(caption_class).eye(n_classes, dtype=probs.dtype)[caption_class]
    return probs @ Tensor(onehot)                                       # [K, n_classes]


def zero_shot_predict(image_embeds, class_embeds):
    """The class whose embedding is nearest (largest cosine) to each image: an int Tensor
    [N] on the device of image_embeds."""
    image_embeds = as_tensor(image_embeds)
    return (image_embeds @ as_tensor(class_embeds, like=image_embeds).T).argmax(axis=1)


def retrieval_recall_at_1(image_embeds, text_embeds):
    """R@1 for N matching pairs (row i of each belongs together), two floats:
    (image -> text: the nearest text is its own, text -> image: the nearest image is its own)."""
    image_embeds = as_tensor(image_embeds)
    sim = (image_embeds @ as_tensor(text_embeds, like=image_embeds).T).data    # [N, N]
    xp = get_array_module(sim)
    target = xp.arange(len(sim))
    hits = xp.stack([(sim.argmax(axis=a) == target).mean() for a in (1, 0)])
    return tuple(to_numpy(hits).tolist())                                   # one read


def caption_by_retrieval(image_embeds, caption_embeds, captions, logit_scale, k=3):
    """Captioning without a decoder: the k captions nearest to each image, with their
    probabilities under softmax(exp(logit_scale) * cosine) over all candidates.
    Returns a list (one per image) of k (caption, probability) pairs."""
    image_embeds = as_tensor(image_embeds)
    logits = _scale(logit_scale) * (image_embeds @ as_tensor(caption_embeds, like=image_embeds).T)
    probs = logits.softmax(axis=1).numpy()                                   # [N, K]
    top = np.argsort(-probs, axis=1)[:, :k]
    return [[(captions[j], float(probs[i, j])) for j in row] for i, row in enumerate(top)]
