"""python -m tinygen.tour list | check N [N ...] | check all   (--solution: the answers)"""

import argparse
import sys
import traceback

from tinygen.tour import EXERCISES, check


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinygen.tour", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the exercises")
    p = sub.add_parser("check", help="check exercises")
    p.add_argument("exercises", nargs="+", help="numbers, or 'all'")
    p.add_argument("--solution", action="store_true",
                   help="check the reference answers in tinygen/tour/solutions/ instead")
    p.add_argument("--traceback", action="store_true", help="show where a check failed")
    args = parser.parse_args(argv)
    if args.command == "list":
        for n, (module, task, _) in EXERCISES.items():
            print(f"{n:3d}  tinygen/tour/{module}.py  {task}")
        return 0
    wanted = list(EXERCISES) if args.exercises == ["all"] else []
    for word in args.exercises if not wanted else ():
        if not word.isdigit() or int(word) not in EXERCISES:
            parser.error(f"no exercise {word!r}: choose from 1 to {len(EXERCISES)} or 'all'")
        wanted.append(int(word))
    failed = 0
    for n in wanted:
        try:
            check(n, args.solution)
            print(f"exercise {n:2d} PASS  {EXERCISES[n][1]}")
        except Exception as e:  # noqa: BLE001  the reader's code may raise anything
            failed += 1
            kind = "not done yet" if isinstance(e, NotImplementedError) else type(e).__name__
            print(f"exercise {n:2d} FAIL  {EXERCISES[n][1]}\n    {kind}: {e}")
            if args.traceback:
                traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
