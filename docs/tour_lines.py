"""Keep the line numbers that docs/tour.md cites in step with the code.

Every citation in the tour reads `path:start-end` (`anchor`): the anchor is text on the
range's first line (a `def` or `class` line, or a comment). This script finds each anchor
in its file and recomputes the range: a `def`/`class` anchor spans its whole block, any
other anchor keeps the length it was written with.

    python docs/tour_lines.py           # list citations whose numbers are out of date
    python docs/tour_lines.py --fix     # rewrite docs/tour.md with the current numbers

It exits 1 when a citation is out of date (without --fix) or cannot be resolved (a file
or anchor that no longer exists: fix those by hand).
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOUR = ROOT / "docs" / "tour.md"
CITATION = re.compile(r"`(?P<path>[\w./-]+):(?P<start>\d+)-(?P<end>\d+)` \(`(?P<anchor>[^`]+)`\)")


def block_end(lines, i):
    """The last line (0-based) of the def/class block whose header is lines[i]: every
    following line indented deeper (or blank), trailing blank lines left out."""
    indent = len(lines[i]) - len(lines[i].lstrip())
    last = i
    for k in range(i + 1, len(lines)):
        text = lines[k]
        if text.strip() and len(text) - len(text.lstrip()) <= indent:
            break
        if text.strip():
            last = k
    return last


def resolve(path, start, end, anchor):
    """(start, end) 1-based for this citation in the code as it is now, or an error string."""
    file = ROOT / path
    if not file.is_file():
        return f"{path}: no such file"
    lines = file.read_text(encoding="utf-8").splitlines()
    hits = [i for i, line in enumerate(lines) if anchor in line]
    if not hits:
        return f"{path}: anchor {anchor!r} not found"
    i = min(hits, key=lambda h: abs(h - (start - 1)))   # the nearest, if it occurs twice
    if re.match(r"\s*(async\s+)?(def|class)\s", lines[i]):
        return i + 1, block_end(lines, i) + 1
    return i + 1, i + 1 + (end - start)


def citations(text):
    return list(CITATION.finditer(text))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fix", action="store_true", help="rewrite docs/tour.md")
    args = parser.parse_args(argv)
    text = TOUR.read_text(encoding="utf-8")
    errors, stale, out, pos = [], 0, [], 0
    for m in citations(text):
        start, end = int(m["start"]), int(m["end"])
        got = resolve(m["path"], start, end, m["anchor"])
        out.append(text[pos:m.start()])
        pos = m.end()
        if isinstance(got, str):
            errors.append(got)
            out.append(m.group(0))
            continue
        if got != (start, end):
            stale += 1
            print(f"{m['path']}:{start}-{end} ({m['anchor']}) -> {got[0]}-{got[1]}")
        out.append(f"`{m['path']}:{got[0]}-{got[1]}` (`{m['anchor']}`)")
    out.append(text[pos:])
    for e in errors:
        print("cannot resolve:", e)
    if args.fix and stale:
        TOUR.write_text("".join(out), encoding="utf-8")
        print(f"rewrote {stale} citation(s) in {TOUR}")
    return 1 if errors or (stale and not args.fix) else 0


if __name__ == "__main__":
    sys.exit(main())
