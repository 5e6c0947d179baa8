"""Data: tokenizers, text corpora and batching (image datasets live beside them)."""

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
    "default_corpus",
    "encode_corpus",
    "get_batch",
    "read_text",
    "tokenizer_from_state_dict",
    "train_val_split",
]
