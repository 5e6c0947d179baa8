"""A sandbox for programs written by a model: parse with `ast`, admit a whitelist, interpret.

Model-written code is never handed to Python's `exec` or `eval`. `run` parses the text with
`ast.parse`, checks every node against a whitelist of a small Python subset (the same idea
as the execution harness of Codex, Chen et al. 2021, made strict), and then walks the tree
itself, with its own environment that holds only the program's variables and a few pure
builtins. Nothing the program can name reaches the file system, modules or Python objects'
attributes: there is no attribute syntax at all, no import, no dunder name.

The admitted subset: one top-level `def` with plain positional parameters; return, if /
elif / else, for over ranges and lists, while, break, continue, pass, assignment (names,
tuple unpacking, list items) and augmented assignment; int / bool / None / str constants;
list and tuple displays, list comprehensions, slicing, indexing, arithmetic (+ - * // % **),
comparisons, boolean ops, conditional expressions; calls of the function itself and of the
builtins len, sum, min, max, sorted, reversed, range, abs, list, enumerate, zip.

Limits (each one hit is a SandboxError, not a hang): interpreter steps, call depth, the
size of any value built (list length, string length, integer bits — checked *before* a
big value is made), the source length, and wall time.

Read in order: sandbox_subset.py (SandboxError, the whitelist check), sandbox_budget.py
(the limits, the size checks, the builtins), then here: the interpreter and `run`.
"""

import ast
import warnings

from tinygen.rl.sandbox_budget import _COMPARE, _PLAIN, Limits, _binop, _Budget, _builtins
from tinygen.rl.sandbox_subset import BUILTIN_NAMES, SandboxError, _refuse, check

DEFAULT_LIMITS = Limits()

__all__ = ["BUILTIN_NAMES", "Limits", "Program", "SandboxError", "check", "compile_program",
           "run", "run_tests"]


# ---- the interpreter ------------------------------------------------------------------------
class _Return(Exception):
    def __init__(self, value):
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Interpreter:
    """Walks the checked tree. Environments are plain dicts of the program's variables."""

    def __init__(self, fn, limits):
        self.fn, self.limits = fn, limits
        self.budget = _Budget(limits)
        self.builtins = _builtins(self.budget)
        self.depth = 0

    def call(self, args):
        params = [a.arg for a in self.fn.args.args]
        if len(args) != len(params):
            raise SandboxError(f"{self.fn.name} takes {len(params)} arguments, "
                               f"got {len(args)}")
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise SandboxError(f"recursion limit: more than {self.limits.max_depth} calls deep")
        env = dict(zip(params, args))
        try:
            self.block(self.fn.body, env)
            return None
        except _Return as r:
            return r.value
        except (_Break, _Continue):
            raise SandboxError("break or continue outside a loop") from None
        finally:
            self.depth -= 1

    # statements
    def loop_body(self, body, env):
        """Run one pass of a loop's body: False after a `break`, True otherwise (`continue`
        included)."""
        try:
            self.block(body, env)
        except _Break:
            return False
        except _Continue:
            pass
        return True

    def block(self, stmts, env):
        for s in stmts:
            self.stmt(s, env)

    def stmt(self, s, env):
        self.budget.tick()
        if isinstance(s, ast.Return):
            raise _Return(None if s.value is None else self.expr(s.value, env))
        if isinstance(s, ast.Assign):
            value = self.expr(s.value, env)
            for target in s.targets:
                self.assign(target, value, env)
        elif isinstance(s, ast.AugAssign):
            load = ast.Name(s.target.id, ast.Load()) if isinstance(s.target, ast.Name) \
                else ast.Subscript(s.target.value, s.target.slice, ast.Load())
            value = _binop(self.budget, s.op, self.expr(load, env), self.expr(s.value, env))
            self.assign(s.target, value, env)
        elif isinstance(s, ast.If):
            self.block(s.body if self.truth(self.expr(s.test, env)) else s.orelse, env)
        elif isinstance(s, ast.For):
            for item in self.iterable(self.expr(s.iter, env)):
                self.assign(s.target, item, env)
                if not self.loop_body(s.body, env):
                    break
            else:
                self.block(s.orelse, env)
        elif isinstance(s, ast.While):
            while self.truth(self.expr(s.test, env)):
                if not self.loop_body(s.body, env):
                    break
            else:
                self.block(s.orelse, env)
        elif isinstance(s, ast.Break):
            raise _Break()
        elif isinstance(s, ast.Continue):
            raise _Continue()
        elif isinstance(s, ast.Expr):
            self.expr(s.value, env)
        elif not isinstance(s, ast.Pass):
            _refuse(s, f"{type(s).__name__} is not allowed")

    def assign(self, target, value, env):
        if isinstance(target, ast.Name):
            env[target.id] = value
        elif isinstance(target, ast.Tuple):
            items = self.iterable(value)
            if len(items) != len(target.elts):
                raise SandboxError(f"cannot unpack {len(items)} values into "
                                   f"{len(target.elts)} names")
            for t, v in zip(target.elts, items):
                self.assign(t, v, env)
        else:  # name[index] = value
            seq, i = self.expr(target.value, env), self.expr(target.slice, env)
            if not isinstance(seq, list) or type(i) is not int:
                raise SandboxError("only list[int] = value may assign an item")
            try:
                seq[i] = value
            except IndexError:
                raise SandboxError("list assignment index out of range") from None

    def truth(self, v):
        if not isinstance(v, _PLAIN):
            raise SandboxError(f"truth value of {type(v).__name__}")
        return bool(v)

    def iterable(self, v):
        if not isinstance(v, (list, tuple, range, str)):
            raise SandboxError(f"cannot iterate over {type(v).__name__}")
        return v

    # expressions
    def expr(self, e, env):
        self.budget.tick()
        if isinstance(e, ast.Constant):
            return self.budget.value(e.value)
        if isinstance(e, ast.Name):
            if e.id in env:
                return env[e.id]
            if e.id in self.builtins or e.id == self.fn.name:
                raise SandboxError(f"{e.id!r} may only be called")
            raise SandboxError(f"name {e.id!r} is not defined")
        if isinstance(e, ast.BinOp):
            return _binop(self.budget, e.op, self.expr(e.left, env), self.expr(e.right, env))
        if isinstance(e, ast.UnaryOp):
            v = self.expr(e.operand, env)
            if isinstance(e.op, ast.Not):
                return not self.truth(v)
            if type(v) not in (int, bool):
                raise SandboxError("unary - and + take integers")
            return -v if isinstance(e.op, ast.USub) else +v
        if isinstance(e, ast.BoolOp):
            v = None
            for operand in e.values:  # short-circuit, returning the deciding operand
                v = self.expr(operand, env)
                if self.truth(v) == isinstance(e.op, ast.Or):
                    return v
            return v
        if isinstance(e, ast.Compare):
            left = self.expr(e.left, env)
            for op, right_node in zip(e.ops, e.comparators):
                right = self.expr(right_node, env)
                try:
                    if not _COMPARE[type(op)](left, right):
                        return False
                except TypeError as err:
                    raise SandboxError(f"type error: {err}") from None
                left = right
            return True
        if isinstance(e, ast.IfExp):
            branch = e.body if self.truth(self.expr(e.test, env)) else e.orelse
            return self.expr(branch, env)
        if isinstance(e, (ast.List, ast.Tuple)):
            items = [self.expr(x, env) for x in e.elts]
            return self.budget.value(items if isinstance(e, ast.List) else tuple(items))
        if isinstance(e, ast.ListComp):
            out = []
            self.comprehension(e, 0, dict(env), out)
            return out
        if isinstance(e, ast.Subscript):
            return self.subscript(self.expr(e.value, env), e.slice, env)
        if isinstance(e, ast.Call):
            args = [self.expr(a, env) for a in e.args]
            if e.func.id == self.fn.name:
                return self.call(args)
            return self.budget.value(self.builtins[e.func.id](*args))
        _refuse(e, f"{type(e).__name__} is not allowed")

    def comprehension(self, e, i, env, out):
        """[elt for target in iter if cond ...]: its own scope (a copy of env), as Python 3."""
        gen = e.generators[i]
        for item in self.iterable(self.expr(gen.iter, env)):
            self.assign(gen.target, item, env)
            if all(self.truth(self.expr(c, env)) for c in gen.ifs):
                if i + 1 < len(e.generators):
                    self.comprehension(e, i + 1, env, out)
                else:
                    out.append(self.expr(e.elt, env))
                    self.budget.length(len(out))

    def subscript(self, seq, index, env):
        if not isinstance(seq, (list, tuple, str, range)):
            raise SandboxError(f"cannot index {type(seq).__name__}")
        if isinstance(index, ast.Slice):
            parts = [None if p is None else self.expr(p, env)
                     for p in (index.lower, index.upper, index.step)]
            if not all(p is None or type(p) is int for p in parts):
                raise SandboxError("slice bounds must be integers")
            if parts[2] == 0:
                raise SandboxError("slice step cannot be zero")
            result = seq[slice(*parts)]
            self.budget.tick(len(result))
            return list(result) if isinstance(result, range) else result
        i = self.expr(index, env)
        if type(i) is not int:
            raise SandboxError("indices must be integers")
        try:
            return seq[i]
        except IndexError:
            raise SandboxError("index out of range") from None


# ---- run --------------------------------------------------------------------------------------
class Program:
    """A program text that has been parsed and admitted: run it on many inputs, parse once."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args, **limits):
        return _run(self.fn, args, Limits(**limits))


def compile_program(program, limits=DEFAULT_LIMITS):
    """Parse and check a program text; returns a Program (raises SandboxError)."""
    if not isinstance(program, str):
        raise SandboxError(f"a program is a str, got {type(program).__name__}")
    if len(program) > limits.max_source:
        raise SandboxError(f"size limit: program of {len(program)} characters "
                           f"(max {limits.max_source})")
    try:
        # mode "single" (one statement, the def): a file-mode parse that fails reads the
        # source line back from the "file" named in the error, an open() we do not want
        with warnings.catch_warnings():   # e.g. SyntaxWarning "invalid decimal literal"
            warnings.simplefilter("ignore")
            tree = ast.parse(program, mode="single")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise SandboxError(f"does not parse: {type(e).__name__}: {e}") from None
    return Program(check(tree))


def _copy_in(v, budget):
    """Arguments are copied in (a program may not change its caller's lists) and checked."""
    if isinstance(v, (list, tuple)):
        budget.length(len(v))
        items = [_copy_in(x, budget) for x in v]
        return items if isinstance(v, list) else tuple(items)
    if not isinstance(v, _PLAIN):
        raise SandboxError(f"arguments must be ints, strings, lists or tuples, got "
                           f"{type(v).__name__}")
    return budget.value(v)


def run(program, args, **limits):
    """Run the one function that `program` defines on `args` (a tuple) and return its result.
    Keyword arguments override the fields of Limits. Raises SandboxError with the reason
    when the program is refused, fails, or hits a limit."""
    lim = Limits(**limits)
    return _run(compile_program(program, lim).fn, args, lim)


def _run(fn, args, limits):
    interp = Interpreter(fn, limits)   # a fresh budget of steps and time for each call
    try:
        return interp.call([_copy_in(a, interp.budget) for a in tuple(args)])
    except RecursionError:
        raise SandboxError("recursion limit: expression nested too deeply") from None
    except MemoryError:
        raise SandboxError("out of memory") from None


def run_tests(program, tests, **limits):
    """Which of the tests [(args, expected), ...] the program passes: a list of bools, all
    False when the program is refused. Parsed and checked once; each test gets the limits."""
    lim = Limits(**limits)
    try:
        fn = compile_program(program, lim).fn
    except SandboxError:
        return [False] * len(tests)
    results = []
    for args, expected in tests:
        try:
            results.append(_same(_run(fn, args, lim), expected))
        except (SandboxError, RecursionError):  # RecursionError: comparing a nested result
            results.append(False)
    return results


def _same(a, b):
    """Equal and of the same kind (True is not 1, a tuple is not a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b
