"""PNG files with the standard library only, and two pictures to put in them.

    write_png("samples.png", image_grid(images, nrow=8))          # a grid of generated images
    write_png("gan.png", scatter_plot([real, fake], [GREY, RED]))  # 2-D samples, real vs model

A PNG file (W3C PNG spec, 3rd ed.) is an 8-byte signature followed by chunks; each chunk is
its data length (4 bytes, big-endian), a 4-letter type, the data, and a CRC-32 of type + data.
Three chunks are enough: IHDR (size and pixel format), IDAT (the zlib-compressed pixel rows,
each row prefixed by a "filter" byte), and IEND. `write_png` uses filter 0 ("None") for every
row; `read_png` undoes all five filters, so it also reads PNGs that other programs wrote
(8-bit, non-interlaced ones).
"""

import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# colour type (IHDR) -> channels per pixel: grey, RGB, grey + alpha, RGBA
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
GREY, RED, BLUE, BLACK = (160, 160, 160), (220, 30, 30), (30, 80, 220), (0, 0, 0)


# ---- writing --------------------------------------------------------------------------------
def _as_uint8(array):
    """uint8 as is; bool as 0/255; floats in [0, 1] scaled to 0..255 (clipped, NaN -> 0);
    other integers if they already lie in 0..255."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        return np.round(np.clip(np.nan_to_num(array), 0.0, 1.0) * 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(f"write_png: integer pixels must lie in 0..255, got "
                             f"{array.min()}..{array.max()}")
        return array.astype(np.uint8)
    raise ValueError(f"write_png: cannot store dtype {array.dtype} as pixels")


def _chunk(kind, data):
    """One chunk: length, type, data, CRC-32 over type + data."""
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(array):
    """The bytes of an 8-bit PNG of `array`: [H, W] or [H, W, 1] grey, [H, W, 3] RGB."""
    pixels = _as_uint8(array)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        colour_type = 0
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        colour_type = 2
    else:
        raise ValueError(f"write_png: want an image [H, W] (grey) or [H, W, 3] (RGB), "
                         f"got shape {pixels.shape}")
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"write_png: the image is empty, shape {pixels.shape}")
    # width, height, bit depth 8, colour type, compression 0, filter method 0, no interlace
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    rows = pixels.reshape(height, -1)  # [H, W * channels]
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows])  # filter byte 0 before each row
    return (PNG_SIGNATURE + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + _chunk(b"IEND", b""))


def write_png(path, array):
    """Write `array` (uint8, or float in [0, 1]; [H, W] or [H, W, 3]) to `path` as a PNG.

    The bytes go to a temporary file in the same folder first and then replace `path` in one
    step (os.replace), so a reader never sees half a file, even if the writer is killed.
    """
    data = encode_png(array)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes files private (0o600); a picture is for sharing
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# ---- reading --------------------------------------------------------------------------------
def read_chunks(data):
    """Split PNG bytes into [(type, data)], checking the signature and every chunk's CRC."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("read_png: not a PNG file (wrong signature)")
    chunks, pos = [], len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError(f"read_png: truncated chunk header at byte {pos}")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc_bytes = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc_bytes) != 4:
            raise ValueError(f"read_png: chunk {kind!r} at byte {pos} is truncated")
        if struct.unpack(">I", crc_bytes)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise ValueError(f"read_png: chunk {kind!r} at byte {pos} fails its CRC check")
        chunks.append((kind, body))
        pos += 12 + length
        if kind == b"IEND":
            break
    return chunks


def _paeth(a, b, c):
    """The Paeth predictor: whichever of left (a), up (b), up-left (c) is nearest a + b - c."""
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(raw, height, stride, bpp):
    """Undo the per-row filters: rows of `stride` bytes, `bpp` bytes per pixel."""
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.int64)
    prev = np.zeros(stride, np.int64)  # the row above the first row counts as zeros
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int64)
        if kind == 0:  # None
            cur = line
        elif kind == 1:  # Sub: add the byte bpp to the left, i.e. a running sum per channel
            cur = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1)
        elif kind == 2:  # Up: add the byte above
            cur = line + prev
        elif kind in (3, 4):  # Average, Paeth: each byte needs the decoded one to its left
            cur = line.copy()
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                up_left = prev[i - bpp] if i >= bpp else 0
                pred = (left + prev[i]) // 2 if kind == 3 else _paeth(left, prev[i], up_left)
                cur[i] = (cur[i] + pred) % 256
        else:
            raise ValueError(f"read_png: unknown filter type {kind} on row {y}")
        out[y] = cur % 256
        prev = out[y]
    return out.astype(np.uint8)


def read_png(path):
    """Read an 8-bit, non-interlaced PNG into uint8 [H, W] (grey) or [H, W, C] (C = 2, 3, 4)."""
    chunks = read_chunks(Path(path).read_bytes())
    if not chunks or chunks[0][0] != b"IHDR":
        raise ValueError(f"read_png: {str(path)!r} does not start with an IHDR chunk")
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB",
                                                                       chunks[0][1])
    if depth != 8 or colour_type not in _CHANNELS or interlace != 0:
        raise ValueError(f"read_png: {str(path)!r}: only 8-bit, non-interlaced grey/RGB(A) "
                         f"PNGs are supported (bit depth {depth}, colour type {colour_type}, "
                         f"interlace {interlace})")
    channels = _CHANNELS[colour_type]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise ValueError(f"read_png: {str(path)!r}: pixel data has {len(raw)} bytes, "
                         f"{width}x{height} needs {height * (stride + 1)}")
    pixels = _unfilter(raw, height, stride, channels)
    return pixels.reshape(height, width) if channels == 1 else pixels.reshape(height, width,
                                                                             channels)


# ---- pictures -------------------------------------------------------------------------------
def image_grid(images, nrow=8, padding=2, pad_value=0):
    """Tile images into one picture, `nrow` images per row (like torchvision's make_grid).

    images: [N, H, W] or [N, 1, H, W] -> [H', W']; [N, 3, H, W] -> [H', W', 3], ready for
    write_png. Cells are `padding` pixels apart, filled with `pad_value` (in the images' own
    units: 0..255 for uint8, 0..1 for floats); the dtype is kept.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]  # [N, H, W] -> [N, 1, H, W]
    if images.ndim != 4 or images.shape[1] not in (1, 3) or len(images) == 0:
        raise ValueError(f"image_grid: want images [N, H, W], [N, 1, H, W] or [N, 3, H, W] "
                         f"with N >= 1, got shape {images.shape}")
    n, channels, h, w = images.shape
    n_cols = min(nrow, n)
    n_rows = -(-n // n_cols)  # ceil
    grid = np.full((channels, n_rows * (h + padding) + padding,
                    n_cols * (w + padding) + padding), pad_value, dtype=images.dtype)
    for k in range(n):
        row, col = divmod(k, n_cols)
        top, left = padding + row * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = images[k]
    return grid[0] if channels == 1 else grid.transpose(1, 2, 0)  # [C, H', W'] -> [H', W', C]


def _square_bounds(points, height, width):
    """Bounds (x_min, x_max, y_min, y_max) holding all points with a 10% margin, with the same
    data units per pixel along x and y, so circles in the data stay circles in the picture."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = (lo + hi) / 2
    per_px = 1.1 * max((hi[0] - lo[0]) / (width - 1), (hi[1] - lo[1]) / (height - 1), 1e-6)
    half_w, half_h = per_px * (width - 1) / 2, per_px * (height - 1) / 2
    return (centre[0] - half_w, centre[0] + half_w, centre[1] - half_h, centre[1] + half_h)


def _stamp(canvas, rows, cols, dy, dx, colour):
    """Paint the offsets (dy, dx) around every pixel (rows, cols), clipped to the canvas."""
    rr, cc = rows[:, None] + dy[None, :], cols[:, None] + dx[None, :]
    inside = (rr >= 0) & (rr < canvas.shape[0]) & (cc >= 0) & (cc < canvas.shape[1])
    canvas[rr[inside], cc[inside]] = colour


def scatter_plot(points_list, colors, size=(512, 512), bounds=None, point_radius=1.5,
                 rings=(), background=(255, 255, 255), axes=True):
    """Rasterize sets of 2-D points into an RGB picture, uint8 [H, W, 3].

    points_list: arrays [n_i, 2], drawn in order, later sets on top (e.g. real samples, then
      generated ones, then the mode centres with a bigger radius).
    colors: one (r, g, b) per set. point_radius: pixels, one number or one per set.
    size: (H, W). bounds: (x_min, x_max, y_min, y_max), or None to fit all points with equal
      units per pixel on both axes. y grows upwards, as on paper.
    rings: (centres [K, 2], radius in data units, colour) triples drawn as circle outlines,
      e.g. (dist.centers, 3 * dist.std, BLACK) shows where samples count as high quality.
    axes: a frame around the picture, the lines x = 0 and y = 0, and a tick at every integer.
    """
    height, width = size
    point_sets = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in points_list]
    if len(colors) != len(point_sets):
        raise ValueError(f"scatter_plot: {len(point_sets)} point sets but {len(colors)} colors")
    radii = np.broadcast_to(np.asarray(point_radius, dtype=float), (len(point_sets),))
    if bounds is None:
        extent = [p[np.isfinite(p).all(axis=1)] for p in point_sets]
        for centres, radius, _ in rings:  # make room for the whole circles too
            centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
            extent += [centres - radius, centres + radius]
        extent = np.concatenate(extent + [np.zeros((0, 2))])
        if len(extent) == 0:
            extent = np.array([[-1.0, -1.0], [1.0, 1.0]])
        bounds = _square_bounds(extent, height, width)
    x_min, x_max, y_min, y_max = bounds
    px_per_x, px_per_y = (width - 1) / (x_max - x_min), (height - 1) / (y_max - y_min)

    def to_col(x):  # data x -> pixel column
        return np.round((np.asarray(x) - x_min) * px_per_x).astype(np.int64)

    def to_row(y):  # data y -> pixel row; rows grow downwards, y upwards
        return np.round((y_max - np.asarray(y)) * px_per_y).astype(np.int64)

    def to_pixels(xy):  # [n, 2] -> (rows, cols), dropping points with NaN or inf
        xy = xy[np.isfinite(xy).all(axis=1)]
        return to_row(xy[:, 1]), to_col(xy[:, 0])

    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = background
    if axes:
        axis_colour, tick = (200, 200, 200), 4
        row0, col0 = int(to_row(0.0)), int(to_col(0.0))
        if 0 <= col0 < width:
            canvas[:, col0] = axis_colour
        if 0 <= row0 < height:
            canvas[row0, :] = axis_colour
        # a tick at every integer, on the axis (or along the edge when 0 is out of view)
        r, c = int(np.clip(row0, 0, height - 1)), int(np.clip(col0, 0, width - 1))
        if x_max - x_min <= 40:
            for col in to_col(np.arange(np.ceil(x_min), np.floor(x_max) + 1)):
                canvas[max(r - tick, 0):r + tick + 1, col] = axis_colour
        if y_max - y_min <= 40:
            for row in to_row(np.arange(np.ceil(y_min), np.floor(y_max) + 1)):
                canvas[row, max(c - tick, 0):c + tick + 1] = axis_colour

    for points, colour, radius in zip(point_sets, colors, radii):
        dy, dx = np.mgrid[-int(radius):int(radius) + 1, -int(radius):int(radius) + 1]
        disc = dy**2 + dx**2 <= radius**2 + 1e-9  # radius 0: one pixel
        _stamp(canvas, *to_pixels(points), dy[disc], dx[disc], colour)
    for centres, radius, colour in rings:
        ry, rx = radius * px_per_y, radius * px_per_x  # an ellipse if the scales differ
        reach = int(np.ceil(max(ry, rx))) + 1
        dy, dx = np.mgrid[-reach:reach + 1, -reach:reach + 1]
        on_circle = np.abs(np.hypot(dy / ry, dx / rx) - 1) * min(ry, rx) <= 0.5
        _stamp(canvas, *to_pixels(np.asarray(centres, float).reshape(-1, 2)),
               dy[on_circle], dx[on_circle], colour)
    if axes:
        canvas[[0, -1], :] = (90, 90, 90)
        canvas[:, [0, -1]] = (90, 90, 90)
    return canvas
