"""tinygen.rl.sandbox: the subset runs, and every kind of escape or runaway is stopped fast."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from tinygen.rl.sandbox import SandboxError, run, run_tests


def test_runs_the_subset():
    prog = textwrap.dedent("""
        def f(xs, k):
            out = []
            total = 0
            for i, v in enumerate(sorted(xs)):
                if v % 2 == 0 and not v > 8:
                    total += v
                elif v in [1, 3]:
                    continue
                else:
                    out = out + [v * k]
            while total > 10:
                total = total // 2
            pairs = [a + b for a, b in zip(xs, list(reversed(xs))) if a != b]
            ys = list(range(3))
            ys[0] = -abs(min(xs)) if len(xs) > 0 else 0
            return out[::-1], total, pairs, sum(ys), max(xs[1:3]), xs[-1]
        """)
    namespace = {}
    exec(prog, namespace)  # noqa: S102 -- the test's own trusted program: CPython is the reference
    for args in (([4, 1, 9, 6, 3], 2), ([2, 2, 8, 0], -1), ([7, 5], 3)):
        assert run(prog, args) == namespace["f"](*args)


def test_recursion_and_args_are_copied():
    fib = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
    assert run(fib, (12,)) == 144
    xs = [1, 2]
    assert run("def f(x):\n    x[0] = 9\n    return x\n", (xs,)) == [9, 2]
    assert xs == [1, 2]                      # the caller's list is untouched


def test_run_tests_counts_passes_and_refusals():
    tests = [(([1, 2],), 3), (([5],), 5), (([],), 1)]
    assert run_tests("def f(x):\n return sum(x)", tests) == [True, True, False]
    assert run_tests("import os", tests) == [False, False, False]
    assert run_tests("def f(x):\n return True", [(([1],), 1)]) == [False]   # True is not 1


ATTACKS = {
    # imports and builtins that reach outside
    "import": "import os\ndef f():\n    return 1",
    "import_in_def": "def f():\n    import os\n    return os.getcwd()",
    "from_import": "def f():\n    from os import system\n    return 1",
    "__import__": "def f():\n    return __import__('os').listdir('.')",
    "open": "def f():\n    return open('/etc/passwd')",
    "open_write": "def f():\n    open('pwned.txt', 'w')",
    "eval": "def f():\n    return eval('1 + 1')",
    "exec": "def f():\n    exec('x = 1')",
    "compile": "def f():\n    return compile('1', 'x', 'eval')",
    "getattr": "def f():\n    return getattr([], 'append')",
    "globals": "def f():\n    return globals()",
    "locals": "def f():\n    return locals()",
    "vars": "def f():\n    return vars()",
    "type": "def f():\n    return type(1)",
    "builtin_as_value": "def f():\n    g = len\n    return g",
    # dunder names and attributes
    "dunder_name": "def f():\n    return __builtins__",
    "dunder_attr": "def f():\n    return ().__class__.__bases__[0].__subclasses__()",
    "attribute": "def f(x):\n    return x.append",
    "method_call": "def f():\n    return 'a'.upper()",
    "format_attr": "def f():\n    return '{0.__class__}'.format(1)",
    "fstring": "def f():\n    return f'{1}'",
    "percent_format": "def f():\n    return '%s' % 'x'",
    # definitions and frames outside the subset
    "class": "class A:\n    pass",
    "class_in_def": "def f():\n    class A:\n        pass",
    "lambda": "def f():\n    return (lambda: 1)()",
    "generator_exp": "def f():\n    return sum(x for x in [1])",
    "yield": "def f():\n    yield 1",
    "nested_def": "def f():\n    def g():\n        return 1\n    return g()",
    "two_defs": "def f():\n    return 1\ndef g():\n    return 2",
    "decorator": "@len\ndef f():\n    return 1",
    "default_arg": "def f(x=open):\n    return 1",
    "global": "def f():\n    global y\n    return 1",
    "try": "def f():\n    try:\n        return 1\n    except Exception:\n        return 2",
    "with": "def f():\n    with x:\n        return 1",
    "del": "def f(x):\n    del x\n    return 1",
    "walrus": "def f():\n    return (y := 1)",
    "starred": "def f(x):\n    return max(*x)",
    "keyword_call": "def f(x):\n    return sorted(x, key=abs)",
    "dict": "def f():\n    return {}",
    "float": "def f():\n    return 1.5",
    "bytes": "def f():\n    return b'x'",
    "true_division": "def f():\n    return 1 / 2",
    "async": "async def f():\n    return 1",
    "syntax_error": "def f(:\n    return",
    "not_a_string": 42,
    # runaway loops, recursion and values
    "while_true": "def f():\n    while True:\n        pass",
    "for_huge_range": "def f():\n    for i in range(10 ** 12):\n        pass",
    "recursion": "def f(n):\n    return f(n + 1)",
    "mutual_depth": "def f(n):\n    return f(n) + f(n)",
    "huge_list": "def f():\n    return [0] * 10 ** 9",
    "huge_list_right": "def f():\n    return 10 ** 9 * [0]",
    "doubling_list": "def f():\n    x = [1]\n    while True:\n        x = x + x",
    "huge_string": "def f():\n    return 'a' * 10 ** 9",
    "huge_power": "def f():\n    return 10 ** 10 ** 10",
    "squaring": "def f():\n    x = 2\n    while True:\n        x = x * x",
    "huge_range_list": "def f():\n    return list(range(10 ** 12))",
    "huge_sum": "def f():\n    return sum(range(10 ** 18))",
    "huge_sorted": "def f():\n    return sorted(range(10 ** 9))",
    "huge_comprehension": "def f():\n    return [i for i in range(10 ** 8)]",
    "nested_comprehension": "def f():\n    r = list(range(5000))\n    return [a for a in r for b in r]",
    "long_source": "def f():\n    return 1" + " + 1" * 5000,
    "deep_nesting": "def f():\n    return " + "(" * 150 + "1" + ")" * 150 + " + " + "-" * 3000 + "1",
    "deep_brackets": "def f():\n    return " + "[" * 1000 + "]" * 1000,
    "zero_division": "def f():\n    return 1 // 0",
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_stopped_fast(name):
    t0 = time.perf_counter()
    with pytest.raises(SandboxError):
        run(ATTACKS[name], (0,) if "(n)" in str(ATTACKS[name]) or "(x)" in str(ATTACKS[name])
            else ())
    assert time.perf_counter() - t0 < 2.0, f"{name} took {time.perf_counter() - t0:.2f}s"


def test_limits_are_keyword_arguments():
    loop = "def f():\n    i = 0\n    while i < 1000:\n        i += 1\n    return i"
    assert run(loop, ()) == 1000
    with pytest.raises(SandboxError, match="step limit"):
        run(loop, (), max_steps=500)
    with pytest.raises(SandboxError, match="time limit"):
        run("def f():\n    while True:\n        pass", (), max_steps=10 ** 12, max_seconds=0.2)
    with pytest.raises(SandboxError, match="recursion limit"):
        run("def f(n):\n    return 0 if n == 0 else f(n - 1)", (10,), max_depth=5)
    with pytest.raises(SandboxError, match="size limit"):
        run("def f():\n    return [0] * 100", (), max_len=50)


def test_no_attack_touches_the_file_system(tmp_path):
    """Every attack runs in a fresh interpreter with an audit hook (PEP 578) that records
    file opens, process and socket events, and imports; none may happen during run()."""
    script = textwrap.dedent("""
        import sys, json
        from tinygen.rl.sandbox import SandboxError, run
        sys.path.insert(0, {tests!r})
        from test_sandbox import ATTACKS
        events, armed = [], [False]
        WATCH = ("open", "os.", "subprocess", "socket", "import", "shutil", "exec")

        def hook(event, args):
            if armed[0] and event.startswith(WATCH):
                events.append(event)

        sys.addaudithook(hook)
        for name, program in ATTACKS.items():
            armed[0] = True
            try:
                run(program, ())
            except SandboxError:
                pass
            finally:
                armed[0] = False
        print(json.dumps(events))
        """).format(tests=os.path.dirname(__file__))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, check=False,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert list(tmp_path.iterdir()) == []       # nothing written where it ran
