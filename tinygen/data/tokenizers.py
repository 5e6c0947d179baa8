"""Tokenizers: text <-> lists of integer ids.

Two kinds, both with the same small interface (`encode`, `decode`, `vocab_size`,
`state_dict`, `from_state_dict`):

- `CharTokenizer`: one id per character of a fixed alphabet (nanoGPT's shakespeare_char).
- `BPETokenizer`: byte-level byte-pair encoding as in GPT-2 (Radford et al. 2019) and
  Karpathy's minbpe: the base vocabulary is the 256 byte values, and training adds one
  token per merge of the most frequent adjacent pair, numbered 256, 257, ... in order.

`state_dict()` returns plain JSON-serialisable dicts so a tokenizer can ride along inside a
checkpoint's JSON metadata; `tokenizer_from_state_dict` rebuilds either kind.
"""

import re
from collections import Counter
from itertools import pairwise

# GPT-2's split pattern rewritten for the standard library's `re`, which has no \p{L}:
# contractions | letters | digits | other symbols (incl. "_") | trailing spaces | spaces.
# Every character matches one branch, so the chunks always join back to the text.
# GPT-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""


def _as_id_list(ids):
    """Accept a list, tuple or 1-D NumPy array of ids; return a list of Python ints."""
    return ids.tolist() if hasattr(ids, "tolist") else [int(i) for i in ids]


def _check_ids(name, ids, vocab_size):
    if ids and (min(ids) < 0 or max(ids) >= vocab_size):
        bad = next(i for i in ids if not 0 <= i < vocab_size)
        raise ValueError(f"{name}.decode: token id {bad} is outside the vocabulary "
                         f"(ids must be in [0, {vocab_size}))")


class CharTokenizer:
    """One token per character; ids are positions in `chars`.

    `CharTokenizer.from_text(text)` uses the sorted set of characters in `text`, like nanoGPT.
    """

    def __init__(self, chars):
        chars = list(chars)
        if len(set(chars)) != len(chars):
            dup = next(c for c in chars if chars.count(c) > 1)
            raise ValueError(f"CharTokenizer: character {dup!r} appears more than once")
        if any(len(c) != 1 for c in chars):
            raise ValueError("CharTokenizer: every vocabulary entry must be a single character")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            pos, c = next((i, c) for i, c in enumerate(text) if c not in self.stoi)
            raise ValueError(
                f"CharTokenizer.encode: character {c!r} (U+{ord(c):04X}) at position {pos} "
                f"is not in the vocabulary of {self.vocab_size} characters; build the "
                "tokenizer from text that contains it") from None

    def decode(self, ids):
        ids = _as_id_list(ids)
        _check_ids("CharTokenizer", ids, self.vocab_size)
        return "".join(self.chars[i] for i in ids)

    def state_dict(self):
        return {"type": "char", "chars": "".join(self.chars)}

    @classmethod
    def from_state_dict(cls, state):
        if state.get("type") != "char" or "chars" not in state:
            raise ValueError(f"CharTokenizer.from_state_dict: expected a dict with type 'char' "
                             f"and 'chars', got keys {sorted(state)}")
        return cls(state["chars"])

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def _merge(ids, pair, idx):
    """Replace every occurrence of `pair` in `ids`, scanning left to right, by `idx`."""
    out, i, n = [], 0, len(ids)
    a, b = pair
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _first_occurrence(pair, where, chunks):
    """(chunk index, position) where `pair` first occurs; chunks are numbered in text order."""
    i = min(where[pair])
    ids = chunks[i]
    return i, next(k for k in range(len(ids) - 1) if (ids[k], ids[k + 1]) == pair)


class BPETokenizer:
    """Byte-level BPE (GPT-2 / minbpe). Train with `BPETokenizer.train(text, vocab_size)`.

    Text is first split into chunks with `GPT2_SPLIT_PATTERN` (words, numbers, punctuation
    runs, whitespace), so merges never cross a word boundary; each chunk is encoded as its
    UTF-8 bytes and merges then apply inside chunks only.

    Training keeps each *distinct* chunk once with its frequency, plus
      counts[pair] = occurrences of the pair in the whole text
      where[pair]  = the distinct chunks that contain it.
    Each merge picks the most frequent pair (ties go to the pair that occurs first in the
    text, as in minbpe, whose `max` walks a dict in insertion order), then rewrites only the
    chunks in `where[pair]` and updates the counts of the pairs those chunks gain and lose.
    So a merge costs time in proportion to the text it touches, not to the whole text.

    Encoding applies, inside each chunk, the lowest-numbered applicable merge until none is
    left (the same order training used); encodings of repeated chunks are cached.
    """

    def __init__(self, merges=(), pattern=GPT2_SPLIT_PATTERN):
        self.merges = {}  # (id, id) -> new id, in the order learned
        for pair in merges:
            a, b = int(pair[0]), int(pair[1])
            idx = 256 + len(self.merges)
            if not (0 <= a < idx and 0 <= b < idx) or (a, b) in self.merges:
                raise ValueError(f"BPETokenizer: merge number {idx - 256} {(a, b)} must join "
                                 f"two existing ids below {idx} and must not repeat")
            self.merges[(a, b)] = idx
        self.pattern = pattern
        self._split = re.compile(pattern)
        self.vocab = [bytes([i]) for i in range(256)]  # id -> the bytes it stands for
        for (a, b) in self.merges:
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self._cache = {}  # chunk text -> its ids

    @property
    def vocab_size(self):
        return len(self.vocab)

    @classmethod
    def train(cls, text, vocab_size, pattern=GPT2_SPLIT_PATTERN):
        """Learn `vocab_size - 256` merges from `text`; return a new tokenizer.

        Stops early (with a smaller vocabulary) if no adjacent pair is left to merge.
        """
        if vocab_size < 256:
            raise ValueError(f"BPETokenizer.train: vocab_size must be >= 256 (the byte "
                             f"values), got {vocab_size}")
        # Counter keeps first-seen order, so chunk index = order of first appearance in text.
        chunk_freq = Counter(re.findall(pattern, text))
        chunks = [list(c.encode("utf-8")) for c in chunk_freq]
        freqs = list(chunk_freq.values())

        counts, where = Counter(), {}
        for i, (ids, f) in enumerate(zip(chunks, freqs, strict=True)):
            for pair in pairwise(ids):
                counts[pair] += f
                where.setdefault(pair, set()).add(i)

        merges = []
        for idx in range(256, vocab_size):
            if not counts:
                break
            best = max(counts.values())
            ties = [p for p, c in counts.items() if c == best]
            pair = min(ties, key=lambda p: _first_occurrence(p, where, chunks))
            merges.append(pair)
            # Only the chunks that contain the pair change (copy: `where` changes as we go).
            for i in where[pair].copy():
                old, new = chunks[i], _merge(chunks[i], pair, idx)
                chunks[i] = new
                old_pairs, new_pairs = Counter(pairwise(old)), Counter(pairwise(new))
                for p in old_pairs.keys() | new_pairs.keys():
                    counts[p] += (new_pairs[p] - old_pairs[p]) * freqs[i]
                    if counts[p] == 0:
                        del counts[p]
                    if p not in new_pairs:
                        where[p].discard(i)
                        if not where[p]:
                            del where[p]
                    elif p not in old_pairs:
                        where.setdefault(p, set()).add(i)
        return cls(merges, pattern)

    def _encode_chunk(self, chunk):
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            pair = min(pairwise(ids), key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break  # nothing left to merge
            ids = _merge(ids, pair, self.merges[pair])
        return ids

    def encode(self, text):
        ids = []
        for chunk in self._split.findall(text):
            chunk_ids = self._cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = self._cache[chunk] = self._encode_chunk(chunk)
            ids.extend(chunk_ids)
        return ids

    def decode(self, ids):
        """Join the bytes of `ids`; invalid UTF-8 (e.g. a cut multi-byte char) becomes U+FFFD."""
        ids = _as_id_list(ids)
        _check_ids("BPETokenizer", ids, self.vocab_size)
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")

    def state_dict(self):
        return {"type": "bpe", "pattern": self.pattern,
                "merges": [[a, b] for (a, b) in self.merges]}

    @classmethod
    def from_state_dict(cls, state):
        if state.get("type") != "bpe" or "merges" not in state:
            raise ValueError(f"BPETokenizer.from_state_dict: expected a dict with type 'bpe' "
                             f"and 'merges', got keys {sorted(state)}")
        return cls(state["merges"], state.get("pattern", GPT2_SPLIT_PATTERN))

    def __repr__(self):
        return f"BPETokenizer(vocab_size={self.vocab_size})"


def tokenizer_from_state_dict(state):
    """Rebuild a CharTokenizer or BPETokenizer from its `state_dict()` (e.g. from a checkpoint)."""
    kinds = {"char": CharTokenizer, "bpe": BPETokenizer}
    kind = state.get("type") if isinstance(state, dict) else None
    if kind not in kinds:
        raise ValueError(f"tokenizer_from_state_dict: unknown tokenizer type {kind!r}; "
                         f"expected one of {sorted(kinds)}")
    return kinds[kind].from_state_dict(state)
