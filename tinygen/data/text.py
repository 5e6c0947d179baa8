"""Text corpora and nanoGPT-style batching.

The pipeline a text demo follows:

    text = read_text(path) or default_corpus()
    tok = CharTokenizer.from_text(text)            # or BPETokenizer.train(text, 512)
    data = encode_corpus(text, tok)                # 1-D array of token ids
    train, val = train_val_split(data, 0.1)
    x, y = get_batch(train, batch_size, block_size, rng)   # y is x shifted left by one
"""

import os
import sysconfig
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def read_text(path):
    """Read a UTF-8 text file, with a clear error if it is missing or not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_text: no such file: {str(path)!r}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"read_text: {str(path)!r} is not UTF-8 text (byte {e.start} is "
                         f"{e.object[e.start:e.start + 1]!r}); convert it to UTF-8 first") from None


# Folders of the standard library that are not hand-written library code worth learning from:
# tests, installed third-party packages, code generators' output and data tables.
_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3",
              "__pycache__", "encodings", "pydoc_data", "turtledemo", "ensurepip"}


def _stdlib_sources(root):
    """Yield the stdlib's .py files in a fixed order: each folder's files, then its subfolders,
    both sorted by name (so the corpus is the same on every run of the same Python)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield Path(dirpath) / name


def default_corpus(max_bytes=2_000_000):
    """The built-in corpus: the Python standard library's own source code.

    Every Python install has it, so the text demos run offline with no download, and a GPT
    trained on it learns to write Python. Files come from `sysconfig`'s "stdlib" folder in a
    fixed order (see `_stdlib_sources`), skipping tests, site-packages and generated tables,
    and files that are not valid UTF-8; they are joined with blank lines. The result is cut
    to at most `max_bytes` bytes of UTF-8 (None: the whole library, tens of MB) so that
    demos stay fast. The same Python install always gives the same text.
    """
    root = sysconfig.get_paths()["stdlib"]
    parts, size = [], 0
    for path in _stdlib_sources(root):
        try:
            source = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        parts.append(source)
        size += len(source.encode("utf-8")) + 2  # + the "\n\n" separator
        if max_bytes is not None and size >= max_bytes:
            break
    if not parts:
        raise FileNotFoundError(f"default_corpus: no Python source files found under "
                                f"{root!r}; pass a text file instead (e.g. --text PATH)")
    text = "\n\n".join(parts)
    if max_bytes is not None:
        # Cut on bytes; "ignore" drops a multi-byte character split by the cut.
        text = text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    return text


def encode_corpus(text, tokenizer):
    """Encode `text` into a 1-D array of ids: uint16 when the vocabulary fits (as nanoGPT
    stores its .bin files), int32 otherwise. `get_batch` hands out int64."""
    dtype = np.uint16 if tokenizer.vocab_size <= 2**16 else np.int32
    return np.array(tokenizer.encode(text), dtype=dtype)


def train_val_split(ids, val_frac=0.1):
    """Split a 1-D id array into (train, val); the last `val_frac` of it is val (nanoGPT)."""
    if not 0.0 <= val_frac < 1.0:
        raise ValueError(f"train_val_split: val_frac must be in [0, 1), got {val_frac}")
    n = int(len(ids) * (1.0 - val_frac))
    return ids[:n], ids[n:]


def get_batch(data, batch_size, block_size, rng):
    """Sample `batch_size` random windows of `block_size + 1` ids from `data`.

    Returns int64 arrays x, y of shape (B, T) with y[:, t] = x[:, t + 1]: the target at each
    position is the next token. `rng` is a `numpy.random.Generator`, so batches are
    reproducible and its state can be saved in a checkpoint.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"get_batch: rng must be a numpy.random.Generator "
                        f"(np.random.default_rng(seed)), got {type(rng).__name__}")
    data = np.asarray(data)
    if data.ndim != 1 or not np.issubdtype(data.dtype, np.integer):
        raise ValueError(f"get_batch: data must be a 1-D integer array of token ids, "
                         f"got shape {data.shape} and dtype {data.dtype}")
    if batch_size < 1 or block_size < 1:
        raise ValueError(f"get_batch: batch_size and block_size must be >= 1, "
                         f"got {batch_size} and {block_size}")
    if len(data) < block_size + 1:
        raise ValueError(f"get_batch: need at least block_size + 1 = {block_size + 1} tokens "
                         f"to make one (input, target) pair, but the data has {len(data)}")
    starts = rng.integers(0, len(data) - block_size, size=batch_size)
    windows = sliding_window_view(data, block_size + 1)[starts]  # (B, T + 1), a copy
    windows = windows.astype(np.int64, copy=False)
    return np.ascontiguousarray(windows[:, :-1]), np.ascontiguousarray(windows[:, 1:])
