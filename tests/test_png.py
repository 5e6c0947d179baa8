import os
import struct
import zlib

import numpy as np
import pytest

from tinygen.data import image_grid, read_png, scatter_plot, write_png
from tinygen.data.png import encode_png


def chunks_of(data):
    """Walk a PNG's chunks by hand (spec section 5.3) -> [(type, body, stored crc)]."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        out.append((kind, body, crc))
        pos += 12 + length
    return out


def filtered_png(pixels, filters):
    """A PNG whose row y uses filter type filters[y] (None, Sub, Up, Average, Paeth), made
    the slow, obvious way from the spec, to check that read_png undoes every filter."""
    height, width, channels = pixels.shape
    rows = pixels.reshape(height, -1).astype(int)
    raw = bytearray()
    for y in range(height):
        raw.append(filters[y])
        for i in range(width * channels):
            a = rows[y, i - channels] if i >= channels else 0
            b = rows[y - 1, i] if y > 0 else 0
            c = rows[y - 1, i - channels] if y > 0 and i >= channels else 0
            p = a + b - c
            paeth = min((abs(p - a), 0, a), (abs(p - b), 1, b), (abs(p - c), 2, c))[2]
            pred = [0, a, b, (a + b) // 2, paeth][filters[y]]
            raw.append((rows[y, i] - pred) % 256)
    colour_type = {1: 0, 3: 2, 4: 6}[channels]

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))


# ---- writing and reading --------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(7, 5), (7, 5, 3), (1, 1), (1, 9, 3)])
def test_round_trip_uint8(tmp_path, shape):
    image = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    write_png(tmp_path / "a.png", image)
    np.testing.assert_array_equal(read_png(tmp_path / "a.png"), image)


def test_float_bool_and_single_channel_inputs(tmp_path):
    image = np.array([[0.0, 0.5, 1.0], [-1.0, 2.0, np.nan]])
    write_png(tmp_path / "f.png", image)
    np.testing.assert_array_equal(read_png(tmp_path / "f.png"), [[0, 128, 255], [0, 255, 0]])
    write_png(tmp_path / "b.png", np.array([[True, False]]))
    np.testing.assert_array_equal(read_png(tmp_path / "b.png"), [[255, 0]])
    write_png(tmp_path / "c.png", np.full((2, 2, 1), 7, np.int64))
    np.testing.assert_array_equal(read_png(tmp_path / "c.png"), np.full((2, 2), 7))


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 2)), np.zeros((2, 2, 4)), np.zeros(5),
                                 np.zeros((0, 3)), np.full((2, 2), 300)])
def test_write_png_rejects(tmp_path, bad):
    with pytest.raises(ValueError):
        write_png(tmp_path / "x.png", bad)
    assert not (tmp_path / "x.png").exists()


def test_chunks_and_crcs_follow_the_spec():
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    chunks = chunks_of(encode_png(image))
    assert [kind for kind, _, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    for kind, body, crc in chunks:
        assert crc == zlib.crc32(kind + body)
    width, height, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB",
                                                                        chunks[0][1])
    assert (width, height, depth, colour, comp, filt, interlace) == (6, 4, 8, 2, 0, 0, 0)
    raw = np.frombuffer(zlib.decompress(chunks[1][1]), np.uint8).reshape(4, 1 + 6 * 3)
    assert (raw[:, 0] == 0).all()  # filter type 0 on every row
    np.testing.assert_array_equal(raw[:, 1:], image.reshape(4, -1))
    assert chunks_of(encode_png(image[:, :, 0]))[0][1][9] == 0  # grey: colour type 0


def test_read_png_detects_a_bad_crc(tmp_path):
    data = bytearray(encode_png(np.zeros((3, 3), np.uint8)))
    data[-20] ^= 0xFF  # a byte inside the IDAT chunk
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="CRC"):
        read_png(tmp_path / "bad.png")
    (tmp_path / "not.png").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="signature"):
        read_png(tmp_path / "not.png")


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_read_png_undoes_every_filter(tmp_path, channels):
    pixels = np.random.default_rng(channels).integers(0, 256, size=(10, 6, channels),
                                                      dtype=np.uint8)
    filters = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]
    (tmp_path / "f.png").write_bytes(filtered_png(pixels, filters))
    out = read_png(tmp_path / "f.png")
    np.testing.assert_array_equal(out, pixels[:, :, 0] if channels == 1 else pixels)


def test_write_png_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "a.png"
    write_png(path, np.zeros((2, 2), np.uint8))
    write_png(path, np.full((3, 4, 3), 9, np.uint8))
    assert read_png(path).shape == (3, 4, 3)
    assert os.listdir(tmp_path) == ["a.png"]  # no temporary file left behind


def test_pil_reads_our_png(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    image = np.random.default_rng(1).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    write_png(tmp_path / "p.png", image)
    with Image.open(tmp_path / "p.png") as im:
        np.testing.assert_array_equal(np.asarray(im), image)


# ---- image_grid -----------------------------------------------------------------------------

def test_image_grid_layout():
    images = np.stack([np.full((4, 5), k + 1, np.uint8) for k in range(5)])  # [5, 4, 5]
    grid = image_grid(images, nrow=3, padding=2, pad_value=0)
    # torchvision's make_grid: 3 columns, ceil(5 / 3) = 2 rows, each cell + padding
    assert grid.shape == (2 * (4 + 2) + 2, 3 * (5 + 2) + 2) and grid.dtype == np.uint8
    for k in range(5):
        row, col = divmod(k, 3)
        top, left = 2 + row * 6, 2 + col * 7
        assert (grid[top:top + 4, left:left + 5] == k + 1).all()
    assert (grid[:2] == 0).all() and (grid[8:, 16:] == 0).all()  # padding, empty 6th cell
    assert image_grid(images[:, None], nrow=8).shape == (8, 5 * 7 + 2)


def test_image_grid_rgb_and_float():
    images = np.random.default_rng(0).random((6, 3, 4, 4)).astype(np.float32)
    grid = image_grid(images, nrow=2, padding=1, pad_value=0.5)
    assert grid.shape == (3 * 5 + 1, 2 * 5 + 1, 3) and grid.dtype == np.float32
    np.testing.assert_array_equal(grid[1:5, 1:5], images[0].transpose(1, 2, 0))
    assert (grid[0] == 0.5).all()
    with pytest.raises(ValueError):
        image_grid(np.zeros((2, 2, 4, 4)))


# ---- scatter_plot ---------------------------------------------------------------------------

def test_scatter_plot_places_points():
    red, blue = (255, 0, 0), (0, 0, 255)
    points = np.array([[0.5, 0.5], [-1.0, -1.0]])
    img = scatter_plot([points, np.array([[-1.0, -1.0]]), np.array([[np.nan, 0.0]])],
                       [red, blue, (0, 255, 0)], size=(101, 201), bounds=(-1, 1, -1, 1),
                       point_radius=0, axes=False)
    assert img.shape == (101, 201, 3) and img.dtype == np.uint8
    assert tuple(img[25, 150]) == red  # x = 0.5 -> column 150; y = 0.5 -> row 25 (y is up)
    assert tuple(img[100, 0]) == blue  # drawn later, on top of the red point there
    assert (np.all(img == red, axis=-1)).sum() == 1
    assert not np.all(img == (0, 255, 0), axis=-1).any()  # NaN points are skipped
    assert (np.all(img == 255, axis=-1)).sum() == 101 * 201 - 2


def test_scatter_plot_axes_rings_and_auto_bounds():
    ring = np.array([[2.0, 0.0], [-2.0, 0.0]])
    img = scatter_plot([ring], [(255, 0, 0)], size=(64, 64), point_radius=2,
                       rings=[(ring, 0.5, (0, 0, 0))])
    assert np.all(img == (255, 0, 0), axis=-1).sum() > 2  # both discs are drawn
    assert np.all(img == (0, 0, 0), axis=-1).sum() > 20  # and the circles around them
    assert tuple(img[0, 0]) == (90, 90, 90)  # the frame
    middle = img[:, 32]  # x = 0 is the middle column: the y axis
    assert (np.all(middle == (200, 200, 200), axis=-1)).sum() > 40
    with pytest.raises(ValueError, match="colors"):
        scatter_plot([ring, ring], [(0, 0, 0)])
