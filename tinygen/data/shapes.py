"""Shapes with captions: procedural image–text pairs for CLIP and text-to-image models.

Each image holds one shape described by four attributes, and its caption says all four:

    "a small red triangle at the top left"      size, colour, shape, position

    data = make_shapes(2000, seed=0, split="train")
    data.images    float32 [N, 3, S, S] in [0, 1]  (S = 32 by default)
    data.captions  list of N strings
    data.colour, data.shape, data.position, data.size   int64 [N] attribute labels

The split holds out colour–shape combinations. Six of the 6 x 5 = 30 pairs (HELDOUT_COMBOS,
one "diagonal" of the colour–shape table) never occur in split="train"; split="heldout" draws
only those pairs and split="test" draws only the 24 seen pairs (with other images than
train: pass a different seed). Every colour and every shape still occurs in training with
four or five partners, so a model can learn "red" and "circle" separately, but a red circle
is something it has never seen: zero-shot on "heldout" means unseen.

`CaptionTokenizer` turns captions into word ids (the vocabulary is closed and small, so one
token per word keeps sequences at 10 tokens), with begin- and end-of-text tokens.
Same seed, same data: everything is drawn from one np.random.default_rng(seed).

Real images too: `captioned_images` gives Fashion-MNIST (when installed; else what
tinygen.data.images.load_images falls back to) with CLIP's template, "a photo of a sneaker".
"""

from itertools import product
from typing import NamedTuple

import numpy as np

# ---- the attribute vocabularies -------------------------------------------------------------
COLOURS = ("red", "green", "blue", "yellow", "cyan", "magenta")
COLOUR_RGB = np.array([(1.0, 0.1, 0.1), (0.1, 0.8, 0.1), (0.15, 0.35, 1.0),
                       (1.0, 0.95, 0.1), (0.1, 0.95, 0.95), (0.95, 0.2, 0.95)], np.float32)
SHAPES = ("circle", "square", "triangle", "cross", "ring")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "centre")
SIZES = ("small", "large")

# (colour index, shape index) pairs never shown in training: colour i with shape i mod 5,
# so each colour and each shape is held out at most twice and still seen with others
HELDOUT_COMBOS = tuple((c, c % len(SHAPES)) for c in range(len(COLOURS)))
SEEN_COMBOS = tuple(cs for cs in product(range(len(COLOURS)), range(len(SHAPES)))
                    if cs not in HELDOUT_COMBOS)

# where each position puts the shape's centre, as fractions of the image side (row, col)
_CENTRES = {"top left": (0.25, 0.25), "top right": (0.25, 0.75), "bottom left": (0.75, 0.25),
            "bottom right": (0.75, 0.75), "centre": (0.5, 0.5)}
_RADIUS = {"small": (0.13, 0.16), "large": (0.20, 0.23)}  # half the shape's width / side


def caption(colour, shape, position, size):
    """The caption template: attribute indices -> "a small red triangle at the top left"."""
    where = "in the centre" if POSITIONS[position] == "centre" else f"at the {POSITIONS[position]}"
    return f"a {SIZES[size]} {COLOURS[colour]} {SHAPES[shape]} {where}"


def all_captions():
    """Every caption (2 sizes x 6 colours x 5 shapes x 5 positions = 300) and its attributes
    as int64 [300, 4] columns (colour, shape, position, size)."""
    attrs = np.array(list(product(range(len(COLOURS)), range(len(SHAPES)),
                                  range(len(POSITIONS)), range(len(SIZES)))), np.int64)
    return [caption(*a) for a in attrs], attrs


# ---- drawing --------------------------------------------------------------------------------
def _shape_distance(shape, px, py, r):
    """Signed distance (pixels, < 0 inside) to shape `shape` of half-width r centred at the
    origin; px, py are pixel offsets [n, S, S], r is [n, 1, 1]."""
    if SHAPES[shape] == "circle":
        return np.hypot(px, py) - r
    if SHAPES[shape] == "square":
        return np.maximum(np.abs(px), np.abs(py)) - r  # as wide as the circle: corners show
    if SHAPES[shape] == "triangle":  # pointing up: inside all three edges' half-planes
        normals = [np.pi / 2 + k * 2 * np.pi / 3 for k in range(3)]  # outward, rows grow down
        return np.max([np.cos(a) * px + np.sin(a) * py - r / 2 for a in normals], axis=0)
    if SHAPES[shape] == "cross":  # a plus sign, arms a third of r wide
        arm = 0.33 * r
        return np.minimum(np.maximum(np.abs(px) - r, np.abs(py) - arm),
                          np.maximum(np.abs(px) - arm, np.abs(py) - r))
    if SHAPES[shape] == "ring":
        return np.abs(np.hypot(px, py) - 0.8 * r) - 0.25 * r
    raise ValueError(f"no shape {shape}")


def render(colour, shape, position, size, seed=0, image_size=32):
    """Draw one image per row of the int attribute arrays [N]: float32 [N, 3, S, S] in [0, 1].
    Jitter (centre +-1.5 px at S = 32, radius within its size's range, brightness) and pixel
    noise come from np.random.default_rng(seed), so the pixels are not a lookup table."""
    colour, shape, position, size = (np.asarray(a, np.int64) for a in
                                     (colour, shape, position, size))
    rng = np.random.default_rng(seed)
    n, S = len(colour), image_size
    rows, cols = np.mgrid[0:S, 0:S].astype(np.float32)
    centres = np.array([_CENTRES[p] for p in POSITIONS], np.float32) * S  # [5, 2]
    cy = centres[position, 0][:, None, None] + rng.uniform(-1.5, 1.5, (n, 1, 1)) * S / 32
    cx = centres[position, 1][:, None, None] + rng.uniform(-1.5, 1.5, (n, 1, 1)) * S / 32
    lo = np.array([_RADIUS[s][0] for s in SIZES], np.float32)[size]
    hi = np.array([_RADIUS[s][1] for s in SIZES], np.float32)[size]
    r = (S * rng.uniform(lo, hi))[:, None, None]
    cy, cx, r = (a.astype(np.float32) for a in (cy, cx, r))  # float32 pixels: half the work
    brightness = rng.uniform(0.75, 1.0, (n, 1, 1)).astype(np.float32)
    ink = np.zeros((n, S, S), np.float32)
    for k in range(len(SHAPES)):  # one vectorised pass per shape kind
        idx = np.flatnonzero(shape == k)
        sdf = _shape_distance(k, cols - cx[idx], rows - cy[idx], r[idx])
        ink[idx] = np.clip(0.5 - sdf, 0.0, 1.0)  # 1 inside, 0 outside, a 1-pixel soft edge
    rgb = COLOUR_RGB[colour] * brightness[:, :, 0]                    # [N, 3]
    images = ink[:, None] * rgb[:, :, None, None]                     # [N, 3, S, S]
    images += rng.normal(0.0, 0.04, images.shape).astype(np.float32)  # sensor noise
    return np.clip(images, 0.0, 1.0, out=images).astype(np.float32, copy=False)


# ---- datasets -------------------------------------------------------------------------------
class ShapesData(NamedTuple):
    images: np.ndarray    # float32 [N, 3, S, S] in [0, 1]
    captions: list        # N strings, caption(colour, shape, position, size)
    colour: np.ndarray    # int64 [N], index into COLOURS
    shape: np.ndarray     # int64 [N], index into SHAPES
    position: np.ndarray  # int64 [N], index into POSITIONS
    size: np.ndarray      # int64 [N], index into SIZES


SPLITS = {"train": SEEN_COMBOS, "test": SEEN_COMBOS, "heldout": HELDOUT_COMBOS,
          "all": SEEN_COMBOS + HELDOUT_COMBOS}


def make_shapes(n, seed=0, split="train", image_size=32):
    """n captioned images whose colour–shape pair comes from SPLITS[split], drawn uniformly
    (pairs, positions and sizes balanced up to one). Use different seeds for train and test:
    the split decides which pairs appear, the seed which images."""
    if split not in SPLITS:
        raise ValueError(f"make_shapes: split must be one of {sorted(SPLITS)}, got {split!r}")
    rng = np.random.default_rng([seed, list(SPLITS).index(split)])
    combos = np.array(SPLITS[split], np.int64)[rng.permutation(np.arange(n) % len(SPLITS[split]))]
    colour, shape = combos[:, 0], combos[:, 1]
    position = rng.permutation(np.arange(n) % len(POSITIONS))
    size = rng.permutation(np.arange(n) % len(SIZES))
    images = render(colour, shape, position, size, seed=rng.integers(2**32), image_size=image_size)
    captions = [caption(*a) for a in zip(colour, shape, position, size)]
    return ShapesData(images, captions, colour, shape, position, size)


# ---- word tokens ----------------------------------------------------------------------------
class CaptionTokenizer:
    """One id per word of the caption vocabulary, plus <pad> = 0, <bos> and <eot>.

    `encode_batch` gives int64 [N, context_length]: <bos> words <eot> <pad>..., and the
    position of each <eot> — where a CLIP text encoder reads its summary of the caption.
    """

    PAD, BOS, EOT = "<pad>", "<bos>", "<eot>"

    def __init__(self, words=None):
        if words is None:  # every word any caption can use
            words = sorted({w for text in all_captions()[0] for w in text.split()})
        self.itos = [self.PAD, self.BOS, self.EOT] + list(words)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @property
    def vocab_size(self):
        return len(self.itos)

    def encode(self, text):
        try:
            return [self.stoi[self.BOS]] + [self.stoi[w] for w in text.split()] + [
                self.stoi[self.EOT]]
        except KeyError as e:
            raise ValueError(f"CaptionTokenizer.encode: word {e.args[0]!r} is not in the "
                             f"vocabulary of {self.vocab_size} words") from None

    def decode(self, ids):
        words = [self.itos[int(i)] for i in ids]
        return " ".join(w for w in words if w not in (self.PAD, self.BOS, self.EOT))

    def encode_batch(self, texts, context_length=10):
        """texts -> (ids int64 [N, context_length], eot_positions int64 [N])."""
        ids = np.zeros((len(texts), context_length), np.int64)  # <pad> is 0
        eot = np.empty(len(texts), np.int64)
        for i, text in enumerate(texts):
            tokens = self.encode(text)
            if len(tokens) > context_length:
                raise ValueError(f"CaptionTokenizer.encode_batch: {text!r} has {len(tokens)} "
                                 f"tokens, more than context_length {context_length}")
            ids[i, :len(tokens)] = tokens
            eot[i] = len(tokens) - 1
        return ids, eot

    def state_dict(self):
        return {"type": "caption-words", "words": self.itos[3:]}

    @classmethod
    def from_state_dict(cls, state):
        return cls(state["words"])


# ---- real photographs with templated captions -----------------------------------------------
def photo_caption(class_name):
    """CLIP's prompt template for a class: "a photo of a sneaker", "an ankle boot"."""
    name = class_name.lower()
    return f"a photo of {'an' if name[0] in 'aeiou' else 'a'} {name}"


def captioned_images(dataset="fashion", data_dir=None, split="train", seed=0, n_procedural=None):
    """Fashion-MNIST (or MNIST, or the procedural fallback: tinygen.data.images.load_images
    decides and says which in `source`) with one templated caption per image.
    Returns (images float32 [N, 1, 28, 28] in [0, 1], captions list of N strings,
    labels int [N], source str). Build a tokenizer for them with
    CaptionTokenizer(sorted({w for c in captions for w in c.split()}))."""
    from tinygen.data.images import load_images, to_float

    data = load_images(dataset, data_dir, split, seed, n_procedural)
    names = [photo_caption(n) for n in data.class_names]
    return to_float(data.images), [names[k] for k in data.labels], data.labels, data.source
