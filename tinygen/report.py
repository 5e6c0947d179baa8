"""What a training demo leaves behind besides checkpoints: summary.json (its headline
figures, also printed as one JSON line, so a script can `tail -1` a run) and loss.png
(the training curves).

    write_summary(out_dir, {"val_loss": 1.52, "seconds": 301.2})
    save_curves(os.path.join(out_dir, "loss.png"), {"train": (steps, losses)})

The picture is drawn with matplotlib when it is installed (`pip install tinygen[plot]`);
without it, with tinygen's own PNG writer: the curves, a grid, and the axis ranges in a
5-pixel digit font — enough to see a run converge or blow up, needing nothing but NumPy.
"""

import json
import os

import numpy as np

from tinygen.data.png import write_png


def write_summary(out_dir, summary):
    """Write `summary` (a JSON-able dict) to <out_dir>/summary.json and print it as one
    line. Returns the path."""
    path = os.path.join(out_dir, "summary.json")
    with open(path, "w") as f:
        json.dump(summary, f)
    print(json.dumps(summary))
    return path


def _as_xy(curve):
    """A curve as (x, y) float arrays: from a list of values (x = 0, 1, ...) or a pair
    (xs, ys); non-finite points are dropped."""
    if isinstance(curve, tuple) and len(curve) == 2:
        x, y = (np.asarray(v, dtype=np.float64).ravel() for v in curve)
    else:
        y = np.asarray(curve, dtype=np.float64).ravel()
        x = np.arange(len(y), dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"save_curves: a curve has {len(x)} x values but {len(y)} y values")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def save_curves(path, curves, xlabel="step", title=""):
    """Draw `curves` ({name: values or (xs, ys)}) into the PNG file `path`; returns path."""
    curves = {name: _as_xy(c) for name, c in curves.items()}
    try:
        import matplotlib
    except ImportError:
        write_png(path, plot_curves(list(curves.values())))
        return path
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for name, (x, y) in curves.items():
        ax.plot(x, y, label=name, linewidth=1.2)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ---- the picture without matplotlib ----------------------------------------------------------
# a 3x5 pixel font for axis numbers: each glyph is five rows of three bits
_GLYPHS = {
    "0": "111 101 101 101 111", "1": "010 110 010 010 111", "2": "111 001 111 100 111",
    "3": "111 001 111 001 111", "4": "101 101 111 001 001", "5": "111 100 111 001 111",
    "6": "111 100 111 101 111", "7": "111 001 010 010 010", "8": "111 101 111 101 111",
    "9": "111 101 111 001 111", ".": "000 000 000 000 010", "-": "000 000 111 000 000",
    "e": "000 111 101 110 111", "+": "000 010 111 010 000", " ": "000 000 000 000 000",
}
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def _text(canvas, text, top, left, colour=(0, 0, 0), scale=2):
    """Stamp `text` (digits, '.', '-', 'e', '+') with its top-left corner at (top, left)."""
    for k, ch in enumerate(text):
        bits = np.array([[c == "1" for c in row] for row in _GLYPHS[ch].split()])
        bits = np.kron(bits, np.ones((scale, scale), bool))                # [5s, 3s]
        r, c = top, left + k * 4 * scale
        h, w = bits.shape
        if r < 0 or c < 0 or r + h > canvas.shape[0] or c + w > canvas.shape[1]:
            continue
        canvas[r:r + h, c:c + w][bits] = colour


def _number(v):
    return f"{v:.3g}".replace("e+0", "e").replace("e-0", "e-")


def plot_curves(curves, size=(360, 640)):
    """Line plots of [(x, y), ...] on shared axes: an RGB picture, uint8 [H, W, 3], with
    the lowest and highest x and y written at the axes' ends."""
    height, width = size
    canvas = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 70, width - 12, 12, height - 28     # the plot area
    xs = np.concatenate([x for x, _ in curves] + [np.zeros(0)])
    ys = np.concatenate([y for _, y in curves] + [np.zeros(0)])
    if len(xs) == 0:
        xs, ys = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    x_lo, x_hi, y_lo, y_hi = xs.min(), xs.max(), ys.min(), ys.max()
    x_hi, y_hi = max(x_hi, x_lo + 1e-12), max(y_hi, y_lo + 1e-12)

    def to_col(x):
        return np.round(left + (x - x_lo) / (x_hi - x_lo) * (right - left)).astype(int)

    def to_row(y):
        return np.round(bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top)).astype(int)

    for f in np.linspace(0, 1, 5):                                  # a light grid
        canvas[round(top + f * (bottom - top)), left:right + 1] = (225, 225, 225)
        canvas[top:bottom + 1, round(left + f * (right - left))] = (225, 225, 225)
    for k, (x, y) in enumerate(curves):
        colour = COLOURS[k % len(COLOURS)]
        cols, rows = to_col(x), to_row(y)
        for i in range(max(len(x) - 1, 0)):                         # segments, densely sampled
            n = max(abs(cols[i + 1] - cols[i]), abs(rows[i + 1] - rows[i]), 1) + 1
            rr = np.round(np.linspace(rows[i], rows[i + 1], n)).astype(int)
            cc = np.round(np.linspace(cols[i], cols[i + 1], n)).astype(int)
            canvas[rr, cc] = colour
            canvas[np.minimum(rr + 1, bottom), cc] = colour         # 2 pixels thick
        if len(x) == 1:
            canvas[rows[0] - 1:rows[0] + 2, cols[0] - 1:cols[0] + 2] = colour
    canvas[top:bottom + 1, left] = canvas[bottom, left:right + 1] = (60, 60, 60)
    _text(canvas, _number(y_hi), top, 4)
    _text(canvas, _number(y_lo), bottom - 10, 4)
    _text(canvas, _number(x_lo), bottom + 8, left)
    label = _number(x_hi)
    _text(canvas, label, bottom + 8, right - len(label) * 8)
    return canvas
