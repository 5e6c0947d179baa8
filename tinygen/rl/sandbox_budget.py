"""What a sandboxed program may spend, and the operations that charge for it.

`Limits` holds the budget (steps, call depth, value sizes, time); `_Budget` counts the steps
and refuses a value *before* it is built when it would pass a size limit (a list of 10^9
items, a 10^6-bit integer: checking after building would already have spent the memory);
`_binop` does the arithmetic under those checks; `_builtins` gives the pure builtins, their
work charged as steps. sandbox.py's interpreter calls nothing else that computes.
"""

import ast
import operator
import time
from dataclasses import dataclass

from tinygen.rl.sandbox_subset import SandboxError


@dataclass(frozen=True)
class Limits:
    max_steps: int = 100_000      # statements + expressions evaluated + builtin work
    max_depth: int = 50           # nested calls of the program's function
    max_len: int = 10_000         # longest list, tuple, range or string that may be built
    max_int_bits: int = 256       # largest integer, in bits
    max_seconds: float = 1.0      # wall time
    max_source: int = 5_000       # longest program text, in characters


# ---- size checks: refuse a value before it is built -----------------------------------------
class _Budget:
    def __init__(self, limits):
        self.limits = limits
        self.steps = 0
        self.next_clock = 64      # read the clock every 64 steps: cheap, and often enough
        self.deadline = time.perf_counter() + limits.max_seconds

    def tick(self, n=1):
        self.steps += n
        if self.steps > self.limits.max_steps:
            raise SandboxError(f"step limit: more than {self.limits.max_steps} steps")
        if self.steps >= self.next_clock:
            self.next_clock = self.steps + 64
            if time.perf_counter() > self.deadline:
                raise SandboxError(f"time limit: more than {self.limits.max_seconds} s")

    def length(self, n):
        if n > self.limits.max_len:
            raise SandboxError(f"size limit: a sequence of {n} items "
                               f"(max {self.limits.max_len})")

    def value(self, v):
        """Check a value just built: integers by bits, sequences by length."""
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, int):
            if v.bit_length() > self.limits.max_int_bits:
                raise SandboxError(f"size limit: an integer of more than "
                                   f"{self.limits.max_int_bits} bits")
        elif isinstance(v, (list, tuple, str, range)):
            self.length(len(v))
        return v


def _bits(v):
    return v.bit_length() if isinstance(v, int) else 0


def _binop(budget, op, a, b):
    """a op b with the size of the result checked first where it could be huge."""
    limits = budget.limits
    kinds = (type(a), type(b))
    if not all(t in (int, bool, list, tuple, str) for t in kinds):
        raise SandboxError(f"unsupported operand types {kinds[0].__name__}, {kinds[1].__name__}")
    if isinstance(op, ast.Pow):
        if not (isinstance(a, int) and isinstance(b, int)):
            raise SandboxError("** takes integers")
        if b < 0:
            raise SandboxError("negative exponent (fractions are not in the subset)")
        if abs(a) > 1 and _bits(a) * b > limits.max_int_bits:
            raise SandboxError(f"size limit: integer power of more than "
                               f"{limits.max_int_bits} bits")
    if isinstance(op, ast.Mult):
        seq, n = (a, b) if isinstance(a, (list, tuple, str)) else (b, a)
        if isinstance(seq, (list, tuple, str)) and isinstance(n, int):
            budget.length(len(seq) * max(n, 0))
            budget.tick(len(seq) * max(n, 0))
        elif isinstance(a, int) and isinstance(b, int) \
                and _bits(a) + _bits(b) > limits.max_int_bits + 1:
            raise SandboxError(f"size limit: integer product of more than "
                               f"{limits.max_int_bits} bits")
    if isinstance(op, ast.Add) and isinstance(a, (list, tuple, str)) and type(a) is type(b):
        budget.length(len(a) + len(b))
        budget.tick(len(a) + len(b))
    if isinstance(op, (ast.FloorDiv, ast.Mod)) and isinstance(a, str):
        raise SandboxError("string formatting with % is not allowed")
    try:
        return budget.value(_BINOPS[type(op)](a, b))
    except ZeroDivisionError:
        raise SandboxError("division by zero") from None
    except TypeError as e:
        raise SandboxError(f"type error: {e}") from None


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
            ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_PLAIN = (int, bool, str, list, tuple, range, type(None))


# ---- the builtins: pure functions over plain values, their work charged as steps ------------
def _builtins(budget):
    def sized(x):
        if not isinstance(x, (list, tuple, str, range)):
            raise SandboxError(f"expected a list, tuple, string or range, got "
                               f"{type(x).__name__}")
        budget.tick(len(x) + 1)
        return x

    def _range(*args):
        if not 1 <= len(args) <= 3 or not all(type(a) is int for a in args):
            raise SandboxError("range takes 1 to 3 integers")
        try:
            return budget.value(range(*args))
        except ValueError as e:
            raise SandboxError(f"range: {e}") from None

    def _minmax(fn):
        def f(*args):
            seq = sized(args[0]) if len(args) == 1 else sized(args)
            if len(seq) == 0:
                raise SandboxError(f"{fn.__name__} of an empty sequence")
            try:
                return fn(seq)
            except TypeError as e:
                raise SandboxError(f"type error: {e}") from None
        return f

    def _sum(seq):
        seq = sized(seq)
        total = 0
        for v in seq:
            total = _binop(budget, ast.Add(), total, v)
        return total

    def _sorted(seq):
        try:
            return sorted(sized(seq))
        except TypeError as e:
            raise SandboxError(f"type error: {e}") from None

    def _abs(v):
        if type(v) not in (int, bool):
            raise SandboxError("abs takes an integer")
        return abs(v)

    return {"len": lambda x: len(sized(x)), "sum": _sum, "min": _minmax(min),
            "max": _minmax(max), "sorted": _sorted, "abs": _abs, "range": _range,
            "reversed": lambda x: list(reversed(sized(x))), "list": lambda x: list(sized(x)),
            "enumerate": lambda x: list(enumerate(sized(x))),
            "zip": lambda *xs: list(zip(*[sized(x) for x in xs]))}
