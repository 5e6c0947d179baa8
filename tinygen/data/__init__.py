"""Data: tokenizers, text corpora and batching (image datasets live beside them)."""

from tinygen.data.gpt2_tokenizer import GPT2Tokenizer
from tinygen.data.text import (
    default_corpus,
    encode_corpus,
    get_batch,
    read_text,
    train_val_split,
)
from tinygen.data.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    tokenizer_from_state_dict,
)

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "GPT2Tokenizer",
    "default_corpus",
    "encode_corpus",
    "get_batch",
    "read_text",
    "tokenizer_from_state_dict",
    "train_val_split",
]

# ---- images, 2-D toy distributions and PNG files --------------------------------------------
from tinygen.data.images import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    MNIST_CLASSES,
    PROCEDURAL_CLASSES,
    ImageData,
    find_idx_files,
    iterate_minibatches,
    load_images,
    load_mnist_like,
    procedural_images,
    read_idx,
    to_float,
    write_idx,
)
from tinygen.data.png import image_grid, read_png, scatter_plot, write_png
from tinygen.data.toys import (
    ToyDistribution,
    grid_distribution,
    grid_of_gaussians,
    mode_coverage,
    ring_distribution,
    ring_of_gaussians,
)

__all__ += [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "MNIST_CLASSES",
    "PROCEDURAL_CLASSES",
    "ImageData",
    "ToyDistribution",
    "find_idx_files",
    "grid_distribution",
    "grid_of_gaussians",
    "image_grid",
    "iterate_minibatches",
    "load_images",
    "load_mnist_like",
    "mode_coverage",
    "procedural_images",
    "read_idx",
    "read_png",
    "ring_distribution",
    "ring_of_gaussians",
    "scatter_plot",
    "to_float",
    "write_idx",
    "write_png",
]
