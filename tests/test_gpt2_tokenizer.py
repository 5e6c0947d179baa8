"""GPT-2's tokenizer: tinygen, tiktoken and Hugging Face tokenizers agree id for id.

The vocabulary is trained here by tinygen's BPE trainer and written in GPT-2's file format
and id order (bytes first in the data-gym order, then merges), so nothing downloads.
"""

import json
import random

import numpy as np
import pytest

from tinygen.data import BPETokenizer, GPT2Tokenizer, default_corpus
from tinygen.data.gpt2_tokenizer import ENDOFTEXT, bytes_to_unicode, split_words

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

PIECES = [
    "the", " the", "The", "THE", " Hello", "world", "a", " ", "  ", "   ", "\t", "\n", "\n\n",
    "\r\n", " \r\n ", "\u00a0", "\u3000", "\u2009", "\u0085", "\x1c", "\x0b", "'s", "'t",
    "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'", "''", "don't", "it's", "we'll",
    "0", "7", "42", "2024", " 3.14", "1,000", "٣٤", "½", "Ⅻ", "²", "!", "?!", "...", "--",
    "$", "@#", "_", "__init__", "(", "[]", "{}", "😀", "👍🏽", "👨‍👩‍👧", "❤️", "🇫🇷",
    "中文", "日本語", "한국어", " 漢字", "e\u0301", "a\u0308", "\u0301", "नमस्ते", "ñ", "café",
    "Ωμέγα", "Привет", "مرحبا", "שלום", "ß", "ﬁ", "\u200b", "\u200d", "\ufeff", "x" * 30,
]
TRAIN_TEXT = " ".join(PIECES * 3) + " Emoji 😀😀 中文中文 naïve café résumé 1234567890 "


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """tinygen's trainer -> GPT-2's files (vocab.json + merges.txt)."""
    text = default_corpus(60_000) + TRAIN_TEXT * 20
    bpe = BPETokenizer.train(text, 256 + 600)
    path = tmp_path_factory.mktemp("tok")
    GPT2Tokenizer.from_bpe(bpe).save_pretrained(path)
    return path


def random_strings(n, seed=0):
    rng = random.Random(seed)
    alphabet = "".join(PIECES)
    out = []
    for _ in range(n):
        if rng.random() < 0.3:  # characters drawn one by one: odd neighbours
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20))))
        else:
            out.append("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 10))))
    return out


def test_bytes_to_unicode_is_data_gym_order():
    chars = bytes_to_unicode()
    order = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    order += [b for b in range(256) if b not in order]  # tiktoken's data_gym_to_mergeable...
    assert list(chars) == order and len(set(chars.values())) == 256


def test_split_equals_the_regex_module():
    regex = pytest.importorskip("regex")
    pattern = regex.compile(GPT2_PATTERN)
    for s in random_strings(3000, seed=1):
        assert split_words(s) == pattern.findall(s), repr(s)


def test_tinygen_tiktoken_and_huggingface_agree(folder):
    tiktoken = pytest.importorskip("tiktoken")
    tokenizers = pytest.importorskip("tokenizers")
    ours = GPT2Tokenizer.from_pretrained(folder)
    assert ours.eot_token == ours.vocab_size - 1

    char_byte = {c: b for b, c in bytes_to_unicode().items()}
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    ranks = {bytes(char_byte[c] for c in t): i for t, i in vocab.items() if t != ENDOFTEXT}
    tik = tiktoken.Encoding("local-gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                            special_tokens={ENDOFTEXT: vocab[ENDOFTEXT]})
    hf = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(
        str(folder / "vocab.json"), str(folder / "merges.txt")))
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = tokenizers.decoders.ByteLevel()

    strings = random_strings(10_000)
    theirs = tik.encode_ordinary_batch(strings)
    hf_ids = [e.ids for e in hf.encode_batch(strings, add_special_tokens=False)]
    for s, a, b in zip(strings, theirs, hf_ids, strict=True):
        mine = ours.encode(s)
        assert mine == a == b, repr(s)
        assert ours.decode(mine) == s
    merged = sum(len(s.encode()) - len(a) for s, a in zip(strings, theirs, strict=True))
    assert merged > 50_000  # the merges really were used, not just bytes


def test_openai_file_names_and_special_token(folder, tmp_path):
    ours = GPT2Tokenizer.from_pretrained(folder)
    (tmp_path / "encoder.json").write_bytes((folder / "vocab.json").read_bytes())
    (tmp_path / "vocab.bpe").write_bytes((folder / "merges.txt").read_bytes())
    openai = GPT2Tokenizer.from_pretrained(tmp_path)
    text = "Hello world<|endoftext|> again"
    assert openai.encode(text) == ours.encode(text)
    assert ours.encode(text) == ours.encode("Hello world<|endoftext|>") + ours.encode(" again")
    special = ours.encode(text, allowed_special={ENDOFTEXT})
    assert special == ours.encode("Hello world") + [ours.eot_token] + ours.encode(" again")
    assert ours.decode(special) == text
    assert ours.decode(np.array([ours.byte_ids[0xC3]])) == "\ufffd"  # half of "é"
    with pytest.raises(ValueError, match="not special tokens"):
        ours.encode(text, allowed_special={"<|fim|>"})
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ours.decode([ours.vocab_size])


def test_transformers_reads_our_files(folder):
    transformers = pytest.importorskip("transformers")
    hf = transformers.GPT2TokenizerFast.from_pretrained(str(folder))
    ours = GPT2Tokenizer.from_pretrained(folder)
    for s in random_strings(200, seed=3):
        assert hf.encode(s) == ours.encode(s)


@pytest.mark.parametrize("vocab, merges, words", [
    ("{bad json", "#version: 0.2\n", ["vocab.json", "JSON"]),
    ("[1, 2]", "#version: 0.2\n", ["vocab.json", "JSON object"]),
    (None, "#version: 0.2\nĠ t h\n", ["merges.txt", "line 2"]),
    (None, "#version: 0.2\nĠ zz\n", ["merge 0", "'zz'", "merges.txt"]),
])
def test_broken_files(folder, tmp_path, vocab, merges, words):
    (tmp_path / "vocab.json").write_text(vocab or (folder / "vocab.json").read_text("utf-8"),
                                         encoding="utf-8")
    (tmp_path / "merges.txt").write_text(merges, encoding="utf-8")
    with pytest.raises((ValueError, TypeError)) as e:
        GPT2Tokenizer.from_pretrained(tmp_path)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        GPT2Tokenizer.from_pretrained(tmp_path)
