import gzip
import struct

import numpy as np
import pytest

import tinygen.data.images as images_module
from tinygen.data import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    MNIST_CLASSES,
    PROCEDURAL_CLASSES,
    find_idx_files,
    grid_distribution,
    grid_of_gaussians,
    iterate_minibatches,
    load_images,
    load_mnist_like,
    mode_coverage,
    procedural_images,
    read_idx,
    ring_distribution,
    ring_of_gaussians,
    to_float,
    write_idx,
)

# IDX type codes from LeCun's MNIST page, written out again here so that the reader is checked
# against the format itself and not against its own table.
TYPE_CODES = [(0x08, ">u1", np.uint8), (0x09, ">i1", np.int8), (0x0B, ">i2", np.int16),
              (0x0C, ">i4", np.int32), (0x0D, ">f4", np.float32), (0x0E, ">f8", np.float64)]


def idx_bytes(array, type_code, big_endian_dtype):
    """An IDX file built by hand: 0, 0, type code, ndim, big-endian uint32 sizes, values."""
    header = bytes([0, 0, type_code, array.ndim])
    header += b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.astype(big_endian_dtype).tobytes()


def fake_mnist_dir(folder, n=6, split="train", gz=True, seed=0):
    """A folder with a tiny MNIST-layout split; returns the images and labels written."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    prefix = "train" if split == "train" else "t10k"
    ext = ".gz" if gz else ""
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels)
    return images, labels


# ---- IDX ------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("type_code, be_dtype, dtype", TYPE_CODES)
def test_read_idx_hand_built(tmp_path, gz, type_code, be_dtype, dtype):
    array = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    data = idx_bytes(array, type_code, be_dtype)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.dtype == dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = 1  # a writable copy, not a view of the file's bytes


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [t[2] for t in TYPE_CODES])
def test_write_idx_round_trip(tmp_path, gz, dtype):
    array = np.random.default_rng(0).normal(0, 50, size=(5, 7)).astype(dtype)
    path = tmp_path / ("b.gz" if gz else "b")
    write_idx(path, array)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if gz else b"\x00\x00")
    np.testing.assert_array_equal(read_idx(path), array)


def test_write_idx_matches_the_spec(tmp_path):
    labels = np.array([9, 0, 0, 3], dtype=np.uint8)
    write_idx(tmp_path / "l", labels)
    assert (tmp_path / "l").read_bytes() == b"\x00\x00\x08\x01\x00\x00\x00\x04\x09\x00\x00\x03"


@pytest.mark.parametrize("data, message", [
    (b"\x00\x00\x08", "not an IDX file"),
    (b"\x01\x02\x08\x01\x00\x00\x00\x01\x05", "not an IDX file"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown type code 0x07"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00", "truncated: its header needs 16 bytes"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x04\x01\x02", "truncated: shape (4,)"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "longer than its header says"),
])
def test_read_idx_corrupt(tmp_path, data, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="broken-idx1-ubyte") as info:
        read_idx(path)
    assert message in str(info.value)


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "cut.gz"
    write_idx(path, np.zeros((100, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match="cut.gz.*damaged gzip"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")


def test_write_idx_rejects_other_dtypes(tmp_path):
    with pytest.raises(ValueError, match="no type code"):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))


# ---- MNIST-layout folders -------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_mnist_like(tmp_path, gz, split):
    images, labels = fake_mnist_dir(tmp_path, split=split, gz=gz)
    x, y = load_mnist_like(tmp_path, split)
    assert x.dtype == np.uint8 and x.shape == (6, 28, 28)
    assert y.dtype == np.int64 and y.shape == (6,)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)


def test_find_idx_files_searches_subfolders_and_other_spellings(tmp_path):
    fake_mnist_dir(tmp_path / "a" / "raw", split="test")
    images, labels = find_idx_files(tmp_path, "test")
    assert images.name == "t10k-images-idx3-ubyte.gz" and images.parent.name == "raw"
    assert labels.name == "t10k-labels-idx1-ubyte.gz"
    assert find_idx_files(tmp_path, "train") is None
    assert find_idx_files(tmp_path / "missing", "train") is None
    (tmp_path / "b").mkdir()
    write_idx(tmp_path / "b" / "train-images.idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    write_idx(tmp_path / "b" / "train-labels.idx1-ubyte", np.zeros(2, np.uint8))
    assert find_idx_files(tmp_path, "train")[0].name == "train-images.idx3-ubyte"


def test_load_mnist_like_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist_like(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        load_mnist_like(tmp_path, "valid")
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="do not match"):
        load_mnist_like(tmp_path, "train")


needs_fashion = pytest.mark.skipif(find_idx_files(FASHION_MNIST_DIR, "test") is None,
                                   reason="apt-get install dataset-fashion-mnist")


@needs_fashion
def test_real_fashion_mnist():
    x, y = load_mnist_like(split="test")
    assert x.shape == (10_000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (10_000,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 1000))
    data = load_images("auto", split="test")
    assert data.source.startswith("fashion-mnist test (") and FASHION_MNIST_DIR in data.source
    assert data.class_names == FASHION_MNIST_CLASSES
    assert len(FASHION_MNIST_CLASSES) == 10 and FASHION_MNIST_CLASSES[9] == "Ankle boot"


# ---- load_images ----------------------------------------------------------------------------

def test_load_images_falls_back_to_procedural(tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "FASHION_MNIST_DIR", str(tmp_path / "not-installed"))
    data = load_images("auto", split="train", seed=3, n_procedural=50)
    images, labels, source, class_names = data
    assert images.shape == (50, 28, 28) and labels.shape == (50,)
    assert source.startswith("procedural train") and "not-installed" in source
    assert class_names == PROCEDURAL_CLASSES
    same = procedural_images(50, seed=[3, 0])[0]
    np.testing.assert_array_equal(images, same)
    test = load_images("procedural", split="test", seed=3, n_procedural=50)
    assert not np.array_equal(test.images, images)  # train and test are different draws
    with pytest.raises(FileNotFoundError):  # an explicit --data DIR must hold the files
        load_images("auto", data_dir=tmp_path)


def test_load_images_with_a_data_dir(tmp_path):
    images, labels = fake_mnist_dir(tmp_path / "mnist", split="train")
    for dataset in ("auto", "mnist"):
        data = load_images(dataset, data_dir=tmp_path / "mnist")
        np.testing.assert_array_equal(data.images, images)
        np.testing.assert_array_equal(data.labels, labels)
        assert data.source.startswith("mnist train (") and data.class_names == MNIST_CLASSES
    fake_mnist_dir(tmp_path / "fashion-mnist", split="train")
    assert load_images("auto", tmp_path / "fashion-mnist").class_names == FASHION_MNIST_CLASSES


def test_load_images_errors(tmp_path):
    with pytest.raises(ValueError, match="dataset must be"):
        load_images("cifar")
    with pytest.raises(ValueError, match="needs data_dir"):
        load_images("mnist")
    with pytest.raises(FileNotFoundError):
        load_images("fashion", data_dir=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_images("procedural", split="val")


# ---- procedural images ----------------------------------------------------------------------

def test_procedural_images_deterministic_and_balanced():
    x, y = procedural_images(1000, seed=7)
    x2, y2 = procedural_images(1000, seed=7)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, procedural_images(1000, seed=8)[0])
    assert x.shape == (1000, 28, 28) and x.dtype == np.uint8
    assert y.dtype == np.int64 and set(y.tolist()) == set(range(10))
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 100))
    counts = np.bincount(procedural_images(1005, seed=0)[1])
    assert counts.max() - counts.min() <= 1
    assert x.max() >= 200 and np.median(x) < 40  # bright shapes on a dark, noisy background


def test_procedural_images_other_size():
    x, _ = procedural_images(20, seed=0, size=32)
    assert x.shape == (20, 32, 32)


def test_procedural_classes_differ_but_vary():
    """Class means are far apart (a nearest-mean classifier does well above chance), but
    images within a class are not copies of each other (position/size/noise jitter)."""
    x, y = procedural_images(2000, seed=0)
    xt, yt = procedural_images(500, seed=1)
    flat, flat_t = x.reshape(len(x), -1) / 255.0, xt.reshape(len(xt), -1) / 255.0
    means = np.stack([flat[y == c].mean(axis=0) for c in range(10)])  # [10, 784]
    pred = np.argmin(((flat_t[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == yt).mean() > 0.5
    assert len({x[i].tobytes() for i in np.flatnonzero(y == 0)}) == 200


# ---- helpers --------------------------------------------------------------------------------

def test_to_float():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)  # [1, 2, 2]
    out = to_float(x)
    assert out.shape == (1, 1, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [[0, 1], [0.2, 0.4]], rtol=1e-6)
    assert to_float(np.zeros((2, 3, 4, 4), np.uint8)).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError):
        to_float(np.zeros((4, 4)))


@pytest.mark.parametrize("n, batch_size, drop_last", [(10, 3, False), (10, 3, True),
                                                      (9, 3, True), (2, 5, False)])
def test_iterate_minibatches(n, batch_size, drop_last):
    batches = list(iterate_minibatches(n, batch_size, np.random.default_rng(0),
                                       drop_last=drop_last))
    seen = np.concatenate(batches) if batches else np.array([], int)
    assert len(seen) == len(set(seen.tolist()))  # no index twice
    if drop_last:
        assert all(len(b) == batch_size for b in batches)
        assert len(seen) == n - n % batch_size
    else:
        assert sorted(seen.tolist()) == list(range(n))


def test_iterate_minibatches_order():
    ordered = list(iterate_minibatches(5, 2, shuffle=False))
    assert [b.tolist() for b in ordered] == [[0, 1], [2, 3], [4]]
    a = np.concatenate(list(iterate_minibatches(100, 10, np.random.default_rng(1))))
    b = np.concatenate(list(iterate_minibatches(100, 10, np.random.default_rng(1))))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, np.arange(100))
    with pytest.raises(TypeError, match="Generator"):
        next(iterate_minibatches(5, 2, rng=None))
    with pytest.raises(ValueError):
        next(iterate_minibatches(5, 0, shuffle=False))


# ---- 2-D toy distributions and mode coverage ------------------------------------------------

def test_ring_distribution():
    ring = ring_distribution()
    assert ring.n_modes == 8 and ring.std == 0.02
    np.testing.assert_allclose(np.linalg.norm(ring.centers, axis=1), 2.0)
    np.testing.assert_allclose(ring.centers[0], [2.0, 0.0])
    np.testing.assert_allclose(ring.centers[2], [0.0, 2.0], atol=1e-12)
    gaps = np.linalg.norm(np.diff(ring.centers, axis=0), axis=1)
    np.testing.assert_allclose(gaps, 2 * 2.0 * np.sin(np.pi / 8))  # evenly spaced


def test_grid_distribution():
    grid = grid_distribution()
    assert grid.n_modes == 25 and grid.std == 0.05
    coords = {tuple(c) for c in grid.centers.tolist()}
    assert coords == {(float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}


@pytest.mark.parametrize("dist", [ring_distribution(), grid_distribution()],
                         ids=["ring", "grid"])
def test_toy_samples_statistics(dist):
    x = dist.sample(20_000, np.random.default_rng(0))
    assert x.shape == (20_000, 2) and x.dtype == np.float32
    nearest = np.argmin(((x[:, None] - dist.centers[None]) ** 2).sum(-1), axis=1)
    residual = x - dist.centers[nearest]
    np.testing.assert_allclose(residual.std(axis=0), dist.std, rtol=0.05)
    np.testing.assert_allclose(residual.mean(axis=0), 0, atol=dist.std * 0.05)
    share = np.bincount(nearest, minlength=dist.n_modes) / len(x)
    np.testing.assert_allclose(share, 1 / dist.n_modes, atol=0.02)  # equal weights
    cov = dist.coverage(x[:2500])  # real data: every mode, ~98.9% within 3 sigma (chi, 2 dof)
    assert cov["modes_captured"] == cov["modes_total"] == dist.n_modes
    assert 0.98 < cov["high_quality_frac"] <= 1.0


def test_sampling_shortcuts():
    a = ring_of_gaussians(100, np.random.default_rng(5))
    b = ring_distribution().sample(100, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    g = grid_of_gaussians(100, np.random.default_rng(5), side=3, spacing=1.0, std=0.1)
    assert g.shape == (100, 2) and np.abs(g).max() < 1.0 + 6 * 0.1
    with pytest.raises(TypeError):
        ring_distribution().sample(3, 0)


def test_mode_coverage_hand_built():
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    std = 1.0
    all_modes = np.array([[0.5, 0.0], [10.0, 2.9], [0.0, 10.0], [1.0, 1.0]])
    cov = mode_coverage(all_modes, centers, std)
    assert cov["modes_captured"] == 3 and cov["modes_total"] == 3
    assert cov["high_quality_frac"] == 1.0
    np.testing.assert_array_equal(cov["counts"], [2, 1, 1])

    one_missing = np.array([[0.5, 0.0], [0.0, 9.0], [0.0, 11.0]])
    cov = mode_coverage(one_missing, centers, std)
    assert cov["modes_captured"] == 2 and cov["high_quality_frac"] == 1.0

    # off-mode samples: 3.5 sigma away from (10, 0) is low quality, and a mode reached only
    # by a low-quality sample is not captured; NaN counts as low quality
    off = np.array([[0.0, 0.0], [13.5, 0.0], [5.0, 5.0], [np.nan, 0.0]])
    cov = mode_coverage(off, centers, std)
    assert cov["modes_captured"] == 1
    assert cov["high_quality_frac"] == 0.25
    np.testing.assert_array_equal(cov["counts"], [1, 0, 0])


def test_mode_coverage_scales_with_std_and_min_count():
    centers = np.array([[0.0, 0.0], [1.0, 0.0]])
    x = np.array([[0.0, 0.05]] * 19 + [[1.0, 0.0]] * 20)
    assert mode_coverage(x, centers, std=0.01)["high_quality_frac"] == 20 / 39
    assert mode_coverage(x, centers, std=0.02)["high_quality_frac"] == 1.0
    assert mode_coverage(x, centers, std=0.02, min_count=20)["modes_captured"] == 1
    with pytest.raises(ValueError):
        mode_coverage(np.zeros((3, 3)), centers, 0.1)
