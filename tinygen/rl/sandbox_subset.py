"""The subset of Python that tinygen.rl.sandbox admits, and the check that admits it.

`check` walks every node of a parsed program (ast.walk) and refuses, before anything runs,
whatever is not on the whitelist: imports, attributes (and so every dunder attribute and
method), names containing "__", calls of anything but the program's own function and a few
pure builtins, keyword arguments, classes, lambdas, nested defs, generator expressions,
yield, f-strings, try / with / global / del, floats and dicts. sandbox.py interprets what
passes.
"""

import ast


class SandboxError(Exception):
    """A program was refused (not in the subset), failed (a runtime error), or hit a limit."""


# ---- the whitelist --------------------------------------------------------------------------
_STATEMENTS = (ast.FunctionDef, ast.Return, ast.If, ast.For, ast.While, ast.Break,
               ast.Continue, ast.Pass, ast.Assign, ast.AugAssign, ast.Expr)
_EXPRESSIONS = (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call,
                ast.Name, ast.Constant, ast.List, ast.Tuple, ast.ListComp, ast.Subscript,
                ast.Slice)
_HELPERS = (ast.Interactive, ast.arguments, ast.arg, ast.comprehension, ast.Load, ast.Store,
            ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd,
            ast.Not, ast.And, ast.Or, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
            ast.In, ast.NotIn)
_ALLOWED = _STATEMENTS + _EXPRESSIONS + _HELPERS
BUILTIN_NAMES = ("len", "sum", "min", "max", "sorted", "reversed", "range", "abs", "list",
                 "enumerate", "zip")


def _refuse(node, why):
    line = getattr(node, "lineno", "?")
    raise SandboxError(f"refused (line {line}): {why}")


def check(tree):
    """Raise SandboxError unless every node of the parsed program is in the subset; returns
    the one FunctionDef."""
    if not isinstance(tree, ast.Interactive) or len(tree.body) != 1 \
            or not isinstance(tree.body[0], ast.FunctionDef):
        _refuse(tree, "the program must be exactly one top-level def")
    fn = tree.body[0]
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            _refuse(node, f"{type(node).__name__} is not allowed")
        if isinstance(node, ast.FunctionDef) and node is not fn:
            _refuse(node, "nested function definitions are not allowed")
        if isinstance(node, ast.Name) and "__" in node.id:
            _refuse(node, f"dunder name {node.id!r}")
        if isinstance(node, ast.arg) and ("__" in node.arg or node.annotation is not None):
            _refuse(node, "parameters must be plain names")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, str, type(None))):
            _refuse(node, f"constant of type {type(node.value).__name__}")
        if isinstance(node, ast.Call) and (node.keywords or not isinstance(node.func, ast.Name)
                                           or node.func.id not in BUILTIN_NAMES + (fn.name,)):
            _refuse(node, "only the function itself and the listed builtins may be called, "
                          "with positional arguments")
        if isinstance(node, ast.comprehension) and node.is_async:
            _refuse(node, "async comprehension")
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.For, ast.comprehension)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                _check_target(target)
    a = fn.args
    if fn.decorator_list or fn.returns or a.vararg or a.kwarg or a.kwonlyargs or a.defaults \
            or a.posonlyargs:
        _refuse(fn, "the def takes plain positional parameters only (no decorators, "
                    "defaults, *args, **kwargs or annotations)")
    if fn.name in BUILTIN_NAMES or "__" in fn.name:
        _refuse(fn, f"function name {fn.name!r}")
    return fn


def _check_target(target):
    if isinstance(target, ast.Tuple):
        for t in target.elts:
            _check_target(t)
    elif isinstance(target, ast.Subscript):
        if not isinstance(target.value, ast.Name) or isinstance(target.slice, ast.Slice):
            _refuse(target, "only name[index] = value may assign into a list")
    elif not isinstance(target, ast.Name):
        _refuse(target, "assignment target must be a name, a tuple of names or name[index]")
