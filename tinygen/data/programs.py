"""A program-synthesis task: small Python functions over lists of integers, each specified by a
one-line description and two input -> output examples, judged by hidden tests.

A program is a pipeline of 1-4 *steps* drawn from PRIMITIVES (map and filter as list
comprehensions, sorted, reversed, slicing, sum, len, min, max, counting, arithmetic with a
constant, a conditional), typed list -> list, list -> int or int -> int, written one line
per step so the description and the code line up:

    sort, first 3, sum                     def f(x):
    [5,1,4,2]->7                            x=sorted(x)
    [3,3]->6                                x=x[:3]
                                            x=sum(x)
                                            return x

Held-out compositions (Chen et al. 2021 test on unseen problems; here unseen *compositions*
of seen primitives). The structural key of a program is the tuple of its primitives' names,
constants left out: ("sort", "first", "sum"). A key of two or more steps is held out when
a stable hash of it falls in 1/holdout_mod of the range; training draws only keys that are
not, evaluation only keys that are. Every single primitive is seen in training (depth-1
keys are never held out); a held-out spec asks for a combination of them never trained on.

Reference outputs come from running the reference program in tinygen.rl.sandbox, the
same judge that scores the model. Read in order: the primitives, the task (keys, drawing
programs and tests, prompts), the injected bugs for repair.
"""

import re
import zlib
from dataclasses import dataclass

from tinygen.rl.sandbox import SandboxError, compile_program, run_tests

EOS, PAD = "$", "~"   # end of a program; left padding of prompts to a fixed length


@dataclass(frozen=True)
class Primitive:
    name: str        # the structural name (part of the key)
    kind: str        # "LL" list -> list, "LI" list -> int, "II" int -> int
    describe: str    # the description, "{c}" for the constant
    code: str        # the step's line(s), "{c}" for the constant
    consts: tuple = ()   # the constants to draw from (empty: none)
    bugs: tuple = ()     # (find, replace) mutations for repair: each leaves the style


PRIMITIVES = (
    Primitive("sort", "LL", "sort", "x=sorted(x)", bugs=(("sorted(x)", "sorted(x)[1:]"),)),
    Primitive("reverse", "LL", "reverse", "x=list(reversed(x))",
              bugs=(("list(reversed(x))", "list(x)"),)),
    Primitive("add", "LL", "add {c}", "x=[v+{c} for v in x]", tuple(range(1, 6)),
              bugs=(("v+", "v-"),)),
    Primitive("times", "LL", "times {c}", "x=[v*{c} for v in x]", (2, 3),
              bugs=(("v*", "v**"),)),
    Primitive("square", "LL", "square", "x=[v*v for v in x]", bugs=(("v*v", "v+v"),)),
    Primitive("keep_gt", "LL", "keep >{c}", "x=[v for v in x if v>{c}]", tuple(range(2, 8)),
              bugs=(("v>", "v>="),)),
    Primitive("keep_lt", "LL", "keep <{c}", "x=[v for v in x if v<{c}]", tuple(range(2, 8)),
              bugs=(("v<", "v<="),)),
    Primitive("even", "LL", "keep even", "x=[v for v in x if v%2==0]", bugs=(("==0", "!=0"),)),
    Primitive("odd", "LL", "keep odd", "x=[v for v in x if v%2==1]", bugs=(("==1", "!=1"),)),
    Primitive("first", "LL", "first {c}", "x=x[:{c}]", (1, 2, 3), bugs=(("]", "+1]"),)),
    Primitive("drop", "LL", "drop {c}", "x=x[{c}:]", (1, 2, 3), bugs=((":]", "+1:]"),)),
    Primitive("cap", "LL", "cap {c}", "x=[min(v,{c}) for v in x]", tuple(range(3, 8)),
              bugs=(("min(", "max("),)),
    Primitive("zero_gt", "LL", "zero >{c}", "x=[0 if v>{c} else v for v in x]",
              tuple(range(2, 8)), bugs=(("v>", "v<"),)),
    Primitive("index", "LL", "add index", "x=[v+i for i,v in enumerate(x)]",
              bugs=(("v+i", "v-i"),)),
    Primitive("sum", "LI", "sum", "x=sum(x)", bugs=(("sum(x)", "sum(x)-1"),)),
    Primitive("len", "LI", "count", "x=len(x)", bugs=(("len(x)", "len(x)+1"),)),
    Primitive("max", "LI", "max", "x=max(x)", bugs=(("max(x)", "max(x)+1"),)),
    Primitive("min", "LI", "min", "x=min(x)", bugs=(("min(x)", "min(x)-1"),)),
    Primitive("count_gt", "LI", "count >{c}", "x=len([v for v in x if v>{c}])",
              tuple(range(2, 8)), bugs=(("v>", "v>="),)),
    Primitive("plus", "II", "plus {c}", "x=x+{c}", tuple(range(1, 10)), bugs=(("+", "-"),)),
    Primitive("mul", "II", "mul {c}", "x=x*{c}", (2, 3), bugs=(("*", "**"),)),
    Primitive("mod", "II", "mod {c}", "x=x%{c}", (2, 3, 4, 5), bugs=(("%", "//"),)),
    Primitive("sub_if", "II", "sub {c} if >{c}", "if x>{c}:\n  x=x-{c}", tuple(range(2, 7)),
              bugs=(("x>", "x<"),)),
)
BY_NAME = {p.name: p for p in PRIMITIVES}
# every character a prompt or a program of the task can hold, plus EOS and PAD
ALPHABET = "".join(sorted(set("".join(p.describe + p.code + "".join(map("".join, p.bugs))
                                      for p in PRIMITIVES)
                              + "0123456789[]-> ,\ndef f(x):return fix" + EOS + PAD)))


def tokenizer():
    return ProgramTokenizer()


class ProgramTokenizer:
    """Pieces of the task's own surface form as tokens, so a program is ~8 tokens, not ~70
    characters: a step's code line up to its constant ("\n x=[v+"), the rest of it
    (" for v in x]"), the description words ("keep >"), "def f(x):", "\n return x" --
    what byte-pair merges on this corpus would learn (Sennrich et al. 2016), written down.
    Every single character of ALPHABET is a token too, so any text over it encodes and the
    model may write anything, valid or not; encode takes the longest piece at each place.
    The pieces of the injected bugs are included, so repair prompts stay short."""

    def __init__(self):
        pieces = {"def f(x):", "\n return x", ", ", "->", "fix "}
        for p in PRIMITIVES:
            pieces.update(p.describe.split("{c}"))
            for code in [p.code] + [p.code.replace(a, b, 1) for a, b in p.bugs]:
                pieces.update(("\n " + code.replace("\n", "\n ")).split("{c}"))
        pieces = sorted(pieces - {""} - set(ALPHABET))
        self.pieces = list(ALPHABET) + pieces          # ids: the characters, then the pieces
        self.stoi = {s: i for i, s in enumerate(self.pieces)}
        self._split = re.compile("|".join(map(re.escape, sorted(self.pieces, key=len,
                                                                  reverse=True))))

    @property
    def vocab_size(self):
        return len(self.pieces)

    def encode(self, text):
        ids, end = [], 0
        for m in self._split.finditer(text):
            if m.start() != end:
                break
            ids.append(self.stoi[m.group()])
            end = m.end()
        if end != len(text):
            raise ValueError(f"ProgramTokenizer.encode: character {text[end]!r} at position "
                             f"{end} is not in the task's alphabet")
        return ids

    def decode(self, ids):
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        bad = [i for i in ids if not 0 <= i < len(self.pieces)]
        if bad:
            raise ValueError(f"ProgramTokenizer.decode: token id {bad[0]} is outside the "
                             f"vocabulary of {len(self.pieces)}")
        return "".join(self.pieces[i] for i in ids)


@dataclass
class Spec:
    steps: tuple        # ((primitive name, constant or None), ...)
    description: str    # "sort, first 3, sum"
    examples: list      # [(args, output)] shown in the prompt
    tests: list         # [(args, output)] hidden: the judge
    program: str        # the reference program

    @property
    def key(self):
        return structural_key(self.steps)


def structural_key(steps):
    """The composition, constants left out: ("sort", "first", "sum")."""
    return tuple(name for name, _ in steps)


def program_text(steps):
    lines = ["def f(x):"]
    for name, c in steps:
        lines += [" " + line for line in BY_NAME[name].code.format(c=c).split("\n")]
    return "\n".join(lines + [" return x"])


def description(steps):
    return ", ".join(BY_NAME[name].describe.format(c=c) for name, c in steps)


class ProgramTask:
    """Draws specs. rng is a numpy Generator everywhere (the caller owns the seed)."""

    def __init__(self, max_depth=4, n_examples=2, n_tests=8, holdout_mod=5, max_len=6,
                 prompt_len=80, repair_prompt_len=150):
        if not 1 <= max_depth <= 4:
            raise ValueError(f"ProgramTask: max_depth must be 1-4, got {max_depth}")
        self.max_depth, self.n_examples, self.n_tests = max_depth, n_examples, n_tests
        self.holdout_mod, self.max_len = holdout_mod, max_len
        self.prompt_len = prompt_len   # longest synthesis prompt; longer draws are redrawn
        self.repair_prompt_len = repair_prompt_len   # longest repair prompt (see inject_bug)

    def is_held_out(self, key):
        """A composition of two or more steps whose stable hash falls in the held-out bucket."""
        return len(key) >= 2 and zlib.crc32(",".join(key).encode()) % self.holdout_mod == 0

    def _draw_steps(self, rng):
        depth = int(rng.integers(1, self.max_depth + 1))
        steps, kind = [], "L"
        for i in range(depth):
            last = i == depth - 1
            # a list may stay a list or become an int; an int stays an int. The last step of a
            # list pipeline may reduce it, so outputs are lists and ints alike.
            pool = [p for p in PRIMITIVES if p.kind[0] == kind and (last or kind == "I"
                                                                   or p.kind != "LI"
                                                                   or rng.random() < 0.4)]
            p = pool[int(rng.integers(len(pool)))]
            steps.append((p.name, int(rng.choice(p.consts)) if p.consts else None))
            kind = p.kind[1]
        return tuple(steps)

    def _draw_input(self, rng, short=False):
        n = int(rng.integers(2, 5)) if short else int(rng.integers(1, self.max_len + 1))
        return ([int(v) for v in rng.integers(0, 10, size=n)],)

    def sample(self, rng, held_out=False, depth=None):
        """One spec whose key is held out (held_out=True) or not. Tests are redrawn until the
        reference runs on all of them and gives at least two different outputs."""
        while True:
            steps = self._draw_steps(rng)
            if depth is not None and len(steps) != depth:
                continue
            if self.is_held_out(structural_key(steps)) != held_out:
                continue
            spec = self._with_tests(steps, rng)
            if spec is not None and len(self.prompt(spec)) <= self.prompt_len:
                return spec

    def _with_tests(self, steps, rng):
        program = program_text(steps)
        reference = compile_program(program)   # admitted by the sandbox, like any program
        cases = []
        for attempt in range(60):
            args = self._draw_input(rng, short=len(cases) < self.n_examples)
            try:
                cases.append((args, reference(*args)))
            except SandboxError:   # e.g. max of an empty list: draw another input
                continue
            if len(cases) == self.n_examples + self.n_tests:
                break
        else:
            return None
        tests = cases[self.n_examples:]
        if len({repr(out) for _, out in tests}) < 2:   # a constant function is no test
            return None
        return Spec(steps, description(steps), cases[:self.n_examples], tests, program)

    # ---- prompts --------------------------------------------------------------------------
    @staticmethod
    def prompt(spec):
        """The synthesis prompt: description and examples, one per line."""
        examples = "".join(f"{_show(a[0])}->{_show(out)}\n" for a, out in spec.examples)
        return f"{spec.description}\n{examples}"

    @staticmethod
    def repair_prompt(buggy_program, failing_test):
        (args, expected) = failing_test
        return f"fix {_show(args[0])}->{_show(expected)}\n{buggy_program}\n"

    @property
    def program_len(self):
        """The longest program text plus EOS."""
        longest = max(len(p.code.format(c=9)) + 2 * p.code.count("\n") for p in PRIMITIVES)
        return len("def f(x):\n return x") + self.max_depth * (longest + 2) + 1


    # ---- repair: one injected bug and a failing test ---------------------------------------
    def inject_bug(self, spec, rng):
        """The reference program with one step mutated by one of its primitive's bugs, and the
        first hidden test it fails; None when no mutation changes any test's result or the
        repair prompt would be longer than repair_prompt_len."""
        order = rng.permutation(len(spec.steps))
        for i in order:
            name, c = spec.steps[i]
            for find, replace in BY_NAME[name].bugs:
                lines = BY_NAME[name].code.format(c=c)
                if find not in lines:
                    continue
                buggy_line = lines.replace(find, replace, 1)
                buggy = _replace_step(spec.steps, i, buggy_line)
                passed = run_tests(buggy, spec.tests)
                failing = spec.tests[passed.index(False)] if not all(passed) else None
                if failing is not None and \
                        len(self.repair_prompt(buggy, failing)) <= self.repair_prompt_len:
                    return buggy, failing
        return None


def _replace_step(steps, i, new_code):
    lines = ["def f(x):"]
    for j, (name, c) in enumerate(steps):
        code = new_code if j == i else BY_NAME[name].code.format(c=c)
        lines += [" " + line for line in code.split("\n")]
    return "\n".join(lines + [" return x"])


def _show(v):
    """A value as the prompt writes it: no spaces."""
    return repr(v).replace(" ", "")


def pad_left(text, length):
    """Left-pad a prompt with PAD to a fixed length, so a batch of prompts ends together."""
    if len(text) > length:
        raise ValueError(f"pad_left: prompt of {len(text)} characters exceeds {length}")
    return PAD * (length - len(text)) + text
