import json
import re
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygen.data import (
    BPETokenizer,
    CharTokenizer,
    default_corpus,
    encode_corpus,
    get_batch,
    read_text,
    tokenizer_from_state_dict,
    train_val_split,
)
from tinygen.data.tokenizers import GPT2_SPLIT_PATTERN

SAMPLE = ("First Citizen: We're accounted poor citizens, the patricians good.\n"
          "def get_batch(data, batch_size=64):\n    return x_1, y_2  # 123 ünïcødé 日本語 🙂\n")


def naive_bpe_merges(text, vocab_size):
    """Reference trainer in the style of minbpe's RegexTokenizer: recount every pair of every
    chunk from scratch before each merge; `max` over a dict breaks ties by first occurrence."""
    chunks = [list(c.encode("utf-8")) for c in re.findall(GPT2_SPLIT_PATTERN, text)]
    merges = []
    for idx in range(256, vocab_size):
        stats = {}
        for ids in chunks:
            for pair in pairwise(ids):
                stats[pair] = stats.get(pair, 0) + 1
        if not stats:
            break
        pair = max(stats, key=stats.get)
        merges.append(pair)
        for k, ids in enumerate(chunks):
            out, i = [], 0
            while i < len(ids):
                if i < len(ids) - 1 and (ids[i], ids[i + 1]) == pair:
                    out.append(idx)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            chunks[k] = out
    return merges, [i for ids in chunks for i in ids]


# ---- BPE ------------------------------------------------------------------------------------

def test_bpe_wikipedia_example():
    tok = BPETokenizer.train("aaabdaaabac", vocab_size=259)
    assert tok.merges == {(97, 97): 256, (256, 97): 257, (257, 98): 258}
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.decode([258, 100, 258, 97, 99]) == "aaabdaaabac"
    assert tok.vocab_size == 259


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet="ab c\n'é_1", max_size=80), n_merges=st.integers(0, 20))
def test_bpe_train_matches_naive_reference(text, n_merges):
    tok = BPETokenizer.train(text, 256 + n_merges)
    merges, final_ids = naive_bpe_merges(text, 256 + n_merges)
    assert list(tok.merges) == merges
    assert tok.encode(text) == final_ids  # encoding the training text replays training


BPE = BPETokenizer.train(SAMPLE * 3, vocab_size=300)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=100))
def test_bpe_round_trip_any_unicode(text):
    assert BPE.decode(BPE.encode(text)) == text


def test_split_pattern_covers_every_character():
    text = SAMPLE + "\t\r\n  x__y  \u00a0 ²³ Ⅻ"
    assert "".join(re.findall(GPT2_SPLIT_PATTERN, text)) == text


def test_bpe_merges_stay_inside_chunks():
    tok = BPETokenizer.train("hello world " * 20, vocab_size=300)
    for token in tok.vocab[256:]:
        text = token.decode("utf-8")
        assert re.findall(GPT2_SPLIT_PATTERN, text) == [text]  # a token is never two chunks


def test_bpe_stops_when_nothing_left_to_merge():
    tok = BPETokenizer.train("ab", vocab_size=300)
    assert tok.vocab_size == 257
    assert tok.encode("ab") == [256]


def test_bpe_decode_replaces_invalid_utf8():
    tok = BPETokenizer()
    assert tok.decode(list("é".encode())[:1]) == "\ufffd"


def test_bpe_state_dict_round_trip_through_json():
    state = json.loads(json.dumps(BPE.state_dict()))
    tok = BPETokenizer.from_state_dict(state)
    assert tok.merges == BPE.merges
    assert tok.encode(SAMPLE) == BPE.encode(SAMPLE)
    assert tokenizer_from_state_dict(state).merges == BPE.merges


def test_bpe_bad_input_errors():
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.train("abc", vocab_size=100)
    with pytest.raises(ValueError, match=r"BPETokenizer.decode.*999"):
        BPE.decode([1, 999])
    with pytest.raises(ValueError, match=r"BPETokenizer.decode.*-1"):
        BPE.decode([-1])
    with pytest.raises(ValueError, match="merge number 0"):
        BPETokenizer(merges=[(256, 1)])


# ---- characters -----------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_char_round_trip(data):
    alphabet = data.draw(st.text(min_size=1, max_size=20))
    tok = CharTokenizer.from_text(alphabet)
    text = data.draw(st.text(alphabet=sorted(set(alphabet)), max_size=50))
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode(np.array(ids, dtype=np.uint16)) == text


def test_char_tokenizer_basics_and_state_dict():
    tok = CharTokenizer.from_text("hello")
    assert tok.vocab_size == 4 and tok.encode("hello") == [1, 0, 2, 2, 3]
    state = json.loads(json.dumps(tok.state_dict()))
    assert CharTokenizer.from_state_dict(state).chars == tok.chars
    assert tokenizer_from_state_dict(state).encode("olleh") == tok.encode("olleh")


def test_char_unknown_character_error():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"CharTokenizer.encode.*'z'.*position 2"):
        tok.encode("abz")
    with pytest.raises(ValueError, match=r"CharTokenizer.decode"):
        tok.decode([3])
    with pytest.raises(ValueError, match="more than once"):
        CharTokenizer("aba")
    with pytest.raises(ValueError, match="unknown tokenizer type"):
        tokenizer_from_state_dict({"type": "wordpiece"})


# ---- corpora and batches --------------------------------------------------------------------

def test_read_text(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("héllo\n", encoding="utf-8")
    assert read_text(path) == "héllo\n"
    with pytest.raises(FileNotFoundError, match=r"read_text.*missing.txt"):
        read_text(tmp_path / "missing.txt")
    (tmp_path / "b.txt").write_bytes(b"ok \xff\xfe")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_text(tmp_path / "b.txt")


def test_default_corpus_is_python_source_and_deterministic():
    text = default_corpus(max_bytes=50_000)
    assert 0 < len(text.encode("utf-8")) <= 50_000
    assert "def " in text and "import " in text
    assert default_corpus(max_bytes=50_000) == text


def test_encode_corpus_dtype():
    tok = CharTokenizer.from_text(SAMPLE)
    ids = encode_corpus(SAMPLE, tok)
    assert ids.dtype == np.uint16 and ids.shape == (len(SAMPLE),)
    assert tok.decode(ids) == SAMPLE


def test_train_val_split_takes_tail_as_val():
    ids = np.arange(100)
    train, val = train_val_split(ids, val_frac=0.1)
    assert np.array_equal(train, np.arange(90)) and np.array_equal(val, np.arange(90, 100))
    with pytest.raises(ValueError, match="val_frac"):
        train_val_split(ids, val_frac=1.0)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 200), batch_size=st.integers(1, 8), block_size=st.integers(1, 16),
       seed=st.integers(0, 2**32 - 1))
def test_get_batch_shapes_shift_and_determinism(n, batch_size, block_size, seed):
    data = np.arange(n, dtype=np.uint16)  # value == position, so windows are easy to check
    if n < block_size + 1:
        with pytest.raises(ValueError, match="block_size"):
            get_batch(data, batch_size, block_size, np.random.default_rng(seed))
        return
    x, y = get_batch(data, batch_size, block_size, np.random.default_rng(seed))
    assert x.shape == y.shape == (batch_size, block_size)
    assert x.dtype == y.dtype == np.int64
    assert np.array_equal(y[:, :-1], x[:, 1:]) and np.array_equal(y[:, -1], x[:, -1] + 1)
    assert np.array_equal(x, x[:, :1] + np.arange(block_size))  # contiguous windows of data
    assert x.min() >= 0 and y.max() < n
    x2, y2 = get_batch(data, batch_size, block_size, np.random.default_rng(seed))
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_get_batch_exact_length_and_bad_input():
    data = np.arange(5)
    x, y = get_batch(data, 3, 4, np.random.default_rng(0))
    assert np.array_equal(x, np.tile(np.arange(4), (3, 1)))
    assert np.array_equal(y, np.tile(np.arange(1, 5), (3, 1)))
    with pytest.raises(ValueError, match=r"at least block_size \+ 1 = 6.*has 5"):
        get_batch(data, 3, 5, np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        get_batch(data, 3, 4, 0)
    with pytest.raises(ValueError, match="1-D integer"):
        get_batch(np.zeros((2, 5), dtype=np.int64), 1, 2, np.random.default_rng(0))
