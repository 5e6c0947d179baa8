"""GPT-2's tokenizer: byte-level BPE read from OpenAI's or Hugging Face's files, by hand.

GPT-2 (Radford et al. 2019, section 2.2; OpenAI's `encoder.py`) encodes text in three steps:
  1. split it into chunks with a regular expression (contractions, runs of letters, of
     digits, of other symbols, each with at most one leading space; runs of whitespace);
  2. write each chunk as UTF-8 bytes, one token per byte;
  3. merge adjacent tokens, always the pair whose merge was learned first (lowest rank),
     until no learned pair is left. The chunk's tokens never depend on its neighbours, so
     each distinct chunk is merged once and cached (as tiktoken and Hugging Face do), and a
     chunk that is itself a token is that token, unmerged (tiktoken's shortcut).

The files: `vocab.json` (HF) / `encoder.json` (OpenAI) maps each token to its id, the token
written with `bytes_to_unicode` (every byte as a printable character: "Ġ" is the space);
`merges.txt` / `vocab.bpe` lists the merges "a b" in rank order after a "#version" line.
In GPT-2's own id order the 256 byte tokens come first, in that printable-first ("data gym")
order, then one id per merge, then <|endoftext|>.
"""

import json
import os
import re
import unicodedata
from itertools import accumulate, chain, pairwise, repeat

ENDOFTEXT = "<|endoftext|>"
FILES = {"hf": ("vocab.json", "merges.txt"), "openai": ("encoder.json", "vocab.bpe")}
CACHE_SIZE = 100_000  # distinct chunks remembered; the cache starts over when full


def bytes_to_unicode():
    """byte -> printable character (OpenAI's encoder.py): the printable Latin-1 bytes stand
    for themselves, the other 68 (control bytes, space, NBSP, soft hyphen) for chr(256 + n)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    for n, b in enumerate(b for b in range(256) if b not in chars):
        chars[b] = chr(256 + n)
    return dict(sorted(chars.items(), key=lambda item: ord(item[1])))  # GPT-2's id order


# ---- the pre-tokenisation pattern, without the third-party `regex` module ------------------
# GPT-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# The standard library's `re` has no \p{L} (and its \s, str.isspace, also takes U+001C..1F,
# which Unicode's White_Space does not). A class of a million code points would also be slow
# in `re`. But the pattern only asks, of each character, which class it is in -- letter (L*),
# number (N*), White_Space, other -- plus the exact identity of the apostrophe, the space
# and the ASCII letters of the contractions. So each character is replaced by a stand-in of
# its class (ASCII stays itself), the ASCII pattern below runs on that, and its match
# lengths cut the original text: the same chunks, at C speed.
ASCII_PATTERN = re.compile(r"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+"""
                           r"""|\s+(?!\S)|\s+""", re.ASCII)  # ASCII \s: the 6 of 0x09..0x0D, 0x20
# Unicode's White_Space property (PropList.txt), the \s of the Rust and Oniguruma engines
WHITE_SPACE = {*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028,
               0x2029, 0x202F, 0x205F, 0x3000}


class CharClasses(dict):
    """code point -> its stand-in for ASCII_PATTERN, filled in as characters are met
    (a str.translate table)."""

    def __missing__(self, cp):
        if cp < 128:
            stand_in = "!" if 0x1C <= cp <= 0x1F else chr(cp)  # not White_Space, but \s in re
        elif cp in WHITE_SPACE:
            stand_in = "\t"
        else:
            stand_in = {"L": "x", "N": "0"}.get(unicodedata.category(chr(cp))[0], "!")
        self[cp] = stand_in
        return stand_in


CLASSES = CharClasses()


def split_words(text):
    """GPT-2's pre-tokenisation: the chunks of `text` (they join back to it)."""
    stand_ins = text.translate(CLASSES)
    pieces = ASCII_PATTERN.findall(stand_ins)
    if stand_ins == text:  # plain ASCII: the pieces are the chunks
        return pieces
    ends = list(accumulate(map(len, pieces)))
    return list(map(text.__getitem__, map(slice, [0, *ends], ends)))


def resolve(name_or_path, files):
    """A local folder as is; otherwise a Hugging Face model id ("gpt2"), resolved through
    huggingface_hub's own cache (and its downloader, where the user allows it). tinygen
    itself never downloads."""
    name = os.fspath(name_or_path)
    if os.path.isdir(name):
        return name
    if os.path.isabs(name) or name.startswith(".") or name.count("/") > 1 or os.path.exists(name):
        raise FileNotFoundError(f"{name!r} is not a folder")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise FileNotFoundError(f"{name!r} is not a folder (install huggingface_hub to use "
                                "model ids such as 'gpt2')") from None
    return snapshot_download(name, allow_patterns=list(files))


class GPT2Tokenizer:
    """`encode(text)` equals tiktoken's `encode_ordinary` and Hugging Face's GPT-2 tokenizer.

    `encoder`: token string (bytes_to_unicode form) -> id; `merges`: [(a, b)] in rank order.
    """

    def __init__(self, encoder, merges, special_tokens=(ENDOFTEXT,)):
        byte_char = bytes_to_unicode()
        char_byte = {c: b for b, c in byte_char.items()}
        bad = next((t for t in encoder if not isinstance(t, str) or not t
                    or any(c not in char_byte for c in t)), None)
        specials = {t: encoder[t] for t in special_tokens if t in encoder}
        if bad is not None and bad not in specials:
            raise ValueError(f"GPT2Tokenizer: vocabulary entry {bad!r} is not a byte-level "
                             "token (characters of bytes_to_unicode)")
        self.encoder = dict(encoder)
        for t in special_tokens:  # <|endoftext|> after the rest, as GPT-2 numbers it
            specials.setdefault(t, self.encoder.setdefault(t, max(self.encoder.values(),
                                                                  default=-1) + 1))
        self.special_tokens = specials
        self.decoder = {}  # id -> bytes
        for token, i in self.encoder.items():
            if not isinstance(i, int) or isinstance(i, bool) or i < 0 or i in self.decoder:
                raise ValueError(f"GPT2Tokenizer: token {token!r} has id {i!r}; ids must be "
                                 "distinct non-negative ints")
            self.decoder[i] = token.encode() if token in specials else bytes(
                char_byte[c] for c in token)
        missing = [c for c in byte_char.values() if c not in self.encoder]
        if missing:
            raise ValueError(f"GPT2Tokenizer: the vocabulary lacks byte tokens {missing[:5]}")
        self.byte_ids = [self.encoder[byte_char[b]] for b in range(256)]  # byte -> id
        self.token_ids = {b: i for i, b in self.decoder.items() if i not in specials.values()}
        self.merges = list(merges)
        self.ranks = {}  # (id, id) -> rank: its merge's line in merges.txt
        self.merged = []  # rank -> the id that merge makes
        for rank, (a, b) in enumerate(self.merges):
            for t in (a, b, a + b):
                if t not in self.encoder:
                    raise ValueError(f"GPT2Tokenizer: merge {rank} {a!r} {b!r} needs token "
                                     f"{t!r}, which is not in the vocabulary")
            self.ranks.setdefault((self.encoder[a], self.encoder[b]), rank)
            self.merged.append(self.encoder[a + b])
        self.no_merge = len(self.merges)  # the rank of a pair that is not a merge
        self._cache = {}

    @property
    def vocab_size(self):
        return max(self.decoder) + 1

    @property
    def eot_token(self):
        return self.special_tokens.get(ENDOFTEXT)

    # ---- encoding ---------------------------------------------------------------------
    def _bpe(self, chunk):
        """Step 3 for one chunk: merge the lowest-ranked pair everywhere, until none is left.
        Each round looks up every adjacent pair's rank and finds the lowest with C-level
        builtins (map, min, index): a word of n bytes costs n rounds of n lookups, with no
        Python loop over pairs; only a pair that occurs twice merges in a Python loop."""
        raw = chunk.encode("utf-8")
        if raw in self.token_ids:  # a whole token: tiktoken emits it without merging
            return [self.token_ids[raw]]
        ids = list(map(self.byte_ids.__getitem__, raw))
        get, merged, none = self.ranks.get, self.merged, self.no_merge
        while len(ids) > 1:
            ranks = list(map(get, pairwise(ids), repeat(none)))  # rank of (ids[i], ids[i+1])
            best = min(ranks)
            if best == none:
                break
            if ranks.count(best) == 1:
                i = ranks.index(best)
                ids[i:i + 2] = (merged[best],)
                continue
            out, i, n = [], 0, len(ids)  # left to right, so "a a a" -> "aa a"
            while i < n:
                if i < n - 1 and ranks[i] == best:
                    out.append(merged[best])
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return ids

    def encode_ordinary(self, text):
        """ids of `text`, special tokens treated as plain text (tiktoken's encode_ordinary)."""
        if not isinstance(text, str):
            raise TypeError(f"GPT2Tokenizer.encode: expected str, got {type(text).__name__}")
        chunks, cache = split_words(text), self._cache
        new = set(chunks).difference(cache)
        if len(cache) + len(new) > CACHE_SIZE:
            cache.clear()
            new = set(chunks)
        for chunk in new:
            cache[chunk] = self._bpe(chunk)
        return list(chain.from_iterable(map(cache.__getitem__, chunks)))

    def encode(self, text, allowed_special=()):
        """ids of `text`. By default "<|endoftext|>" in the text is plain text, as tiktoken's
        encode_ordinary; allowed_special={"<|endoftext|>"} (or "all") makes it its token."""
        allowed = self.special_tokens if allowed_special == "all" else allowed_special
        unknown = [t for t in allowed if t not in self.special_tokens]
        if unknown:
            raise ValueError(f"GPT2Tokenizer.encode: {unknown} are not special tokens "
                             f"(known: {sorted(self.special_tokens)})")
        if not allowed:
            return self.encode_ordinary(text)
        ids = []
        split = "(" + "|".join(map(re.escape, sorted(allowed, key=len, reverse=True))) + ")"
        for i, part in enumerate(re.split(split, text)):
            ids += [self.special_tokens[part]] if i % 2 else self.encode_ordinary(part)
        return ids

    def decode(self, ids):
        """Text of `ids`; bytes that are not valid UTF-8 (a cut character) become U+FFFD."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        try:
            return b"".join(self.decoder[int(i)] for i in ids).decode("utf-8", "replace")
        except KeyError:
            bad = next(i for i in ids if int(i) not in self.decoder)
            raise ValueError(f"GPT2Tokenizer.decode: token id {bad} is not in the vocabulary "
                             f"of {self.vocab_size}") from None

    # ---- files --------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path):
        """From vocab.json + merges.txt (Hugging Face) or encoder.json + vocab.bpe (OpenAI)."""
        path = resolve(name_or_path, FILES["hf"] + FILES["openai"])
        for vocab_name, merges_name in FILES.values():
            vocab, merges = os.path.join(path, vocab_name), os.path.join(path, merges_name)
            if os.path.exists(vocab) and os.path.exists(merges):
                break
        else:
            raise FileNotFoundError(f"GPT2Tokenizer.from_pretrained: {path} holds neither "
                                    "vocab.json + merges.txt nor encoder.json + vocab.bpe")
        try:
            with open(vocab, encoding="utf-8") as f:
                encoder = json.load(f)
            with open(merges, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except (ValueError, RecursionError) as e:
            raise ValueError(f"GPT2Tokenizer.from_pretrained: {vocab} or {merges} is not "
                             f"valid UTF-8 / JSON ({e})") from None
        if not isinstance(encoder, dict):
            raise TypeError(f"GPT2Tokenizer.from_pretrained: {vocab} must be a JSON object "
                             "of token -> id")
        pairs = []
        for number, line in enumerate(lines, 1):
            if (number == 1 and line.startswith("#version")) or not line:
                continue
            parts = line.split(" ")
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"GPT2Tokenizer.from_pretrained: {merges} line {number}: "
                                 f"expected two tokens separated by a space, got {line!r}")
            pairs.append(tuple(parts))
        try:
            return cls(encoder, pairs)
        except ValueError as e:
            raise ValueError(f"{e} (in {vocab} / {merges})") from None

    def save_pretrained(self, path):
        """Write vocab.json, merges.txt and tokenizer_config.json (Hugging Face's names)."""
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(self.encoder, f, ensure_ascii=False)
        with open(os.path.join(path, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges))
        config = {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False}
        if self.eot_token is not None:
            config.update(bos_token=ENDOFTEXT, eos_token=ENDOFTEXT, unk_token=ENDOFTEXT)
        with open(os.path.join(path, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
        return path

    @classmethod
    def from_bpe(cls, bpe):
        """GPT-2's files for a tinygen BPETokenizer's merges, in GPT-2's id order: the bytes
        in bytes_to_unicode order, then one id per merge, then <|endoftext|>. A merge whose
        bytes an earlier token already spells is left out (vocab.json holds each once)."""
        byte_char = bytes_to_unicode()
        encoder = {c: i for i, c in enumerate(byte_char.values())}
        text = [byte_char[b] for b in range(256)]  # tinygen id -> token string
        merges = []
        for (a, b), idx in bpe.merges.items():
            text.append(text[a] + text[b])
            assert len(text) == idx + 1
            if text[idx] not in encoder:
                encoder[text[idx]] = len(encoder)
                merges.append((text[a], text[b]))
        return cls(encoder, merges)

    def state_dict(self):
        """Plain JSON (for a checkpoint's metadata), like the other tokenizers'."""
        return {"type": "gpt2", "encoder": self.encoder,
                "merges": [[a, b] for a, b in self.merges],
                "special_tokens": list(self.special_tokens)}

    @classmethod
    def from_state_dict(cls, state):
        if not isinstance(state, dict) or state.get("type") != "gpt2":
            raise ValueError("GPT2Tokenizer.from_state_dict: expected a dict with type 'gpt2'")
        return cls(state["encoder"], [tuple(m) for m in state["merges"]],
                   state.get("special_tokens", (ENDOFTEXT,)))

    def __repr__(self):
        return f"GPT2Tokenizer(vocab_size={self.vocab_size})"
