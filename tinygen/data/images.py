"""Image datasets: the IDX files of MNIST and Fashion-MNIST, and a procedural fallback.

The pipeline an image demo follows:

    data = load_images("auto", data_dir=args.data, split="train", seed=0)
    print("data:", data.source)           # which files were read, or why it is procedural
    x = to_float(data.images)             # uint8 [N, 28, 28] -> float32 [N, 1, 28, 28] in [0, 1]
    for idx in iterate_minibatches(len(x), 128, rng):
        xb, yb = x[idx], data.labels[idx]

Nothing here downloads anything. Fashion-MNIST comes from Debian's `dataset-fashion-mnist`
package (`apt-get install dataset-fashion-mnist`), which puts the four gzipped IDX files in
/usr/share/datasets/fashion-mnist/; real MNIST is any folder holding the standard files
(`--data DIR`). With neither, `load_images("auto")` draws ten classes of shapes instead.
"""

import gzip
import os
import re
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

# ---- the IDX format -------------------------------------------------------------------------
# LeCun's MNIST page: a file starts with the magic number 0x00 0x00 <type code> <ndim>, then
# ndim big-endian uint32 sizes, then the values, big-endian, in C (row-major) order.
IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path):
    """The file's bytes, un-gzipped if it is gzipped (told by its first two bytes, not its name)."""
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:  # EOFError: the .gz was cut short
        raise ValueError(f"read_idx: {str(path)!r} is a damaged gzip file ({e})") from None


def read_idx(path):
    """Read an IDX file (plain or gzipped) into a NumPy array in native byte order.

    Raises FileNotFoundError if the file is missing and ValueError, naming the file and what
    is wrong, if it is not IDX, has an unknown type code, or is truncated or too long.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_idx: no such file: {str(path)!r}")
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"read_idx: {str(path)!r} is not an IDX file: it should start with two "
                         f"zero bytes, a type code and a dimension count, but starts {raw[:4]!r}")
    type_code, ndim = raw[2], raw[3]
    if type_code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"read_idx: {str(path)!r} has unknown type code 0x{type_code:02X} "
                         f"(known: {known})")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"read_idx: {str(path)!r} is truncated: its header needs {header_size} "
                         f"bytes for {ndim} dimensions, the file has {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    dtype = IDX_DTYPES[type_code]
    expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise ValueError(f"read_idx: {str(path)!r} is {problem}: shape {shape} of {dtype.name} "
                         f"needs {expected} bytes, the file has {len(raw)}")
    values = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # a writable copy in native order


def write_idx(path, array):
    """Write `array` as an IDX file, gzipped if `path` ends in .gz (the inverse of read_idx)."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    if array.dtype not in codes:
        raise ValueError(f"write_idx: IDX has no type code for dtype {array.dtype}; use one of "
                         f"uint8, int8, int16, int32, float32, float64")
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I",
                                                                        *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    Path(path).write_bytes(gzip.compress(data) if str(path).endswith(".gz") else data)


# ---- MNIST-layout folders -------------------------------------------------------------------
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # where Debian's package puts it
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(d) for d in range(10))
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def _split_prefix(split):
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _SPLIT_PREFIX[split]


def find_idx_files(data_dir, split="train"):
    """Find the (images, labels) IDX files of `split` in `data_dir` or any folder below it.

    Names follow the MNIST distribution, `train-images-idx3-ubyte` and friends (`t10k-` for
    test), plain or .gz; the `train-images.idx3-ubyte` spelling some mirrors use is accepted
    too. Folders are searched top first, in sorted order. Returns None if either is missing.
    """
    prefix = _split_prefix(split)
    patterns = {kind: re.compile(rf"{prefix}-{kind}[-.]idx{ndim}-ubyte(\.gz)?")
                for kind, ndim in (("images", 3), ("labels", 1))}
    if data_dir is None or not Path(data_dir).is_dir():
        return None
    for folder, subfolders, names in os.walk(data_dir):
        subfolders.sort()
        found = {}
        for kind, pattern in patterns.items():
            # sorted() puts the plain file before its .gz twin, which is faster to read
            matches = sorted(name for name in names if pattern.fullmatch(name))
            if matches:
                found[kind] = Path(folder) / matches[0]
        if len(found) == 2:
            return found["images"], found["labels"]
    return None


def load_mnist_like(data_dir=None, split="train"):
    """Load one split of an MNIST-layout dataset: uint8 images [N, 28, 28], int64 labels [N].

    `data_dir` is searched (subfolders too) by `find_idx_files`; None means Debian's
    Fashion-MNIST folder. Raises FileNotFoundError, saying where it looked, if files are missing.
    """
    data_dir = FASHION_MNIST_DIR if data_dir is None else data_dir
    files = find_idx_files(data_dir, split)
    if files is None:
        prefix = _split_prefix(split)
        raise FileNotFoundError(
            f"load_mnist_like: no {prefix}-images-idx3-ubyte[.gz] and "
            f"{prefix}-labels-idx1-ubyte[.gz] in {str(data_dir)!r} or its subfolders "
            f"(for Fashion-MNIST: apt-get install dataset-fashion-mnist)")
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"load_mnist_like: {str(files[0])!r} and {str(files[1])!r} do not "
                         f"match: images {images.shape} (want [N, H, W]), labels {labels.shape} "
                         f"(want [N])")
    return images.astype(np.uint8, copy=False), labels.astype(np.int64)


# ---- a procedural stand-in: ten classes of shapes -------------------------------------------
PROCEDURAL_CLASSES = ("disc", "ring", "square", "plus", "horizontal bar", "vertical bar",
                      "triangle", "diagonal", "two dots", "L shape")


def _box(px, py, half_w, half_h, angle):
    """Signed distance (pixels; < 0 inside) to a rectangle centred at the origin, turned by
    `angle`. Inputs broadcast: pixel offsets [n, S, S], shape parameters [n, 1, 1]."""
    u = np.cos(angle) * px + np.sin(angle) * py  # rotate the pixel into the box's frame
    v = -np.sin(angle) * px + np.cos(angle) * py
    return np.maximum(np.abs(u) - half_w, np.abs(v) - half_h)


def _shape_distance(label, px, py, r, t, angle):
    """Signed distance to shape `label` centred at the origin, with size r (about half the
    shape's width), stroke thickness t and a small tilt `angle`; all [n, 1, 1] or [n, S, S]."""
    dist = np.hypot(px, py)
    if label == 0:  # disc
        return dist - r
    if label == 1:  # ring
        return np.abs(dist - r) - t / 2
    if label == 2:  # square
        return _box(px, py, 0.8 * r, 0.8 * r, angle)
    if label == 3:  # plus
        return np.minimum(_box(px, py, r, t / 2, angle), _box(px, py, t / 2, r, angle))
    if label == 4:  # horizontal bar
        return _box(px, py, r, t / 2, angle)
    if label == 5:  # vertical bar
        return _box(px, py, t / 2, r, angle)
    if label == 6:  # triangle pointing up: inside all three edges' half-planes
        edges = [angle + np.pi / 2 + k * 2 * np.pi / 3 for k in range(3)]  # outward normals
        return np.max([np.cos(a) * px + np.sin(a) * py - r / 2 for a in edges], axis=0)
    if label == 7:  # diagonal line, "\" in image coordinates (rows grow downwards)
        return _box(px, py, r, t / 2, angle + np.pi / 4)
    if label == 8:  # two dots side by side
        gap = 0.6 * r
        return np.minimum(np.hypot(px - gap, py), np.hypot(px + gap, py)) - 0.45 * r
    if label == 9:  # L: a vertical stroke on the left, a horizontal one along the bottom
        upright = _box(px + 0.6 * r, py, t / 2, r, angle)
        foot = _box(px, py - r + t / 2, 0.6 * r + t / 2, t / 2, angle)
        return np.minimum(upright, foot)
    raise ValueError(f"no procedural class {label}")


def _uniform(rng, lo, hi, n):
    """n uniform draws as float32 [n, 1, 1]: one value per image, broadcast over its pixels."""
    return rng.uniform(lo, hi, size=(n, 1, 1)).astype(np.float32)


def procedural_images(n, seed=0, size=28):
    """Draw `n` images of ten shape classes (PROCEDURAL_CLASSES): uint8 [n, size, size] and
    int64 labels [n], the classes balanced (counts differ by at most one). `seed` is anything
    np.random.default_rng takes (an int, or a list such as [seed, 1]); same seed, same data.

    Each image jitters the shape's position (+-3 px at size 28), size, stroke thickness, tilt
    (+-12 degrees) and brightness, then adds Gaussian pixel noise, so a classifier must learn
    shapes rather than pixels; a small MLP or CNN gets well above 95%.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(PROCEDURAL_CLASSES))
    scale = size / 28
    images = np.empty((n, size, size), dtype=np.uint8)
    centre = (size - 1) / 2
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    for label in range(len(PROCEDURAL_CLASSES)):
        idx = np.flatnonzero(labels == label)
        m = len(idx)
        cx = centre + scale * _uniform(rng, -3, 3, m)
        cy = centre + scale * _uniform(rng, -3, 3, m)
        r = scale * _uniform(rng, 6.5, 9.5, m)  # about half the shape's width
        t = scale * _uniform(rng, 2.0, 3.5, m)  # stroke thickness
        angle = np.deg2rad(_uniform(rng, -12, 12, m))
        brightness = _uniform(rng, 0.6, 1.0, m)
        sdf = _shape_distance(label, cols - cx, rows - cy, r, t, angle)  # [m, S, S]
        ink = np.clip(0.5 - sdf, 0.0, 1.0)  # 1 inside, 0 outside, a 1-pixel soft edge
        noise = rng.normal(0.0, 0.08, size=ink.shape).astype(np.float32)
        pixels = np.clip(brightness * ink + noise, 0.0, 1.0)
        images[idx] = np.round(255 * pixels).astype(np.uint8)
    return images, labels.astype(np.int64)


# ---- one entry point for demos --------------------------------------------------------------
class ImageData(NamedTuple):
    """What `load_images` returns; unpacks as `images, labels, source, class_names = ...`."""
    images: np.ndarray  # uint8 [N, H, W]
    labels: np.ndarray  # int64 [N]
    source: str  # what was loaded, for the demo to print
    class_names: tuple  # class_names[label]


def load_images(dataset="auto", data_dir=None, split="train", seed=0, n_procedural=None):
    """Load an image dataset by name; a demo prints `.source` so the reader knows what it got.

    dataset:
      "auto"        the IDX files in `data_dir` if one is given (a `--data DIR` that holds no
                    IDX files is an error, not a silent switch to other data); else Debian's
                    Fashion-MNIST if installed; else procedural shapes. A `data_dir` whose path
                    contains "fashion" gets Fashion-MNIST's class names, others "0".."9".
      "fashion"     Fashion-MNIST from `data_dir`, or from Debian's folder if None.
      "mnist"       MNIST IDX files in `data_dir` (required: tinygen never downloads).
      "procedural"  `procedural_images`, drawn from `seed`.
    split: "train" or "test". n_procedural: how many procedural images (default 60,000 for
      train and 10,000 for test, as MNIST); train and test are independent draws of one seed.
    Missing files raise FileNotFoundError, except the fallback of "auto" without `data_dir`.
    """
    if dataset not in ("auto", "fashion", "mnist", "procedural"):
        raise ValueError(f"load_images: dataset must be 'auto', 'fashion', 'mnist' or "
                         f"'procedural', got {dataset!r}")
    _split_prefix(split)  # check it early, even for procedural data
    if dataset == "mnist" and data_dir is None:
        raise ValueError("load_images: 'mnist' needs data_dir, a folder with the MNIST IDX "
                         "files (tinygen never downloads anything)")

    reason = "dataset='procedural'"
    if dataset != "procedural":
        folder = FASHION_MNIST_DIR if data_dir is None else data_dir
        is_fashion = dataset == "fashion" or (dataset == "auto" and "fashion" in
                                              str(folder).lower())
        name, class_names = (("fashion-mnist", FASHION_MNIST_CLASSES) if is_fashion
                             else ("mnist", MNIST_CLASSES))
        if data_dir is not None or dataset != "auto" or find_idx_files(folder, split):
            images, labels = load_mnist_like(folder, split)
            return ImageData(images, labels, f"{name} {split} ({folder})", class_names)
        reason = f"no {split} IDX files found in {folder}"

    if n_procedural is None:
        n_procedural = 60_000 if split == "train" else 10_000
    stream = 0 if split == "train" else 1  # independent train and test sets from one seed
    images, labels = procedural_images(n_procedural, seed=[seed, stream])
    return ImageData(images, labels, f"procedural {split} shapes, seed {seed} ({reason})",
                     PROCEDURAL_CLASSES)


# ---- helpers for training loops -------------------------------------------------------------
def to_float(images):
    """uint8 images [N, H, W] (or [N, C, H, W]) -> float32 [N, 1, H, W] (or [N, C, H, W]) in
    [0, 1]: channels first, as PyTorch and most papers' code lay images out."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]  # [N, H, W] -> [N, 1, H, W]
    if images.ndim != 4:
        raise ValueError(f"to_float: want images [N, H, W] or [N, C, H, W], got {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255)
    return images.astype(np.float32)


def iterate_minibatches(n, batch_size, rng=None, shuffle=True, drop_last=False):
    """Yield index arrays that cover range(n) once (one epoch) in batches of `batch_size`.

    shuffle: a new random order from `rng` (a numpy.random.Generator) each call; else in order.
    drop_last: skip the final short batch, so every batch has exactly `batch_size` items.
    """
    if batch_size < 1:
        raise ValueError(f"iterate_minibatches: batch_size must be >= 1, got {batch_size}")
    if shuffle:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"iterate_minibatches: shuffle=True needs rng, a "
                            f"numpy.random.Generator, got {type(rng).__name__}")
        order = rng.permutation(n)
    else:
        order = np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]
