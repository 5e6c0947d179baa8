"""The shapes-with-captions data: determinism, the held-out split, captions and tokens."""

import numpy as np
import pytest

from tinygen.data.shapes import (
    COLOUR_RGB,
    COLOURS,
    HELDOUT_COMBOS,
    POSITIONS,
    SEEN_COMBOS,
    SHAPES,
    SIZES,
    CaptionTokenizer,
    all_captions,
    caption,
    make_shapes,
)


def test_same_seed_same_data_other_seed_other_data():
    a, b = make_shapes(40, seed=3), make_shapes(40, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.captions == b.captions
    c = make_shapes(40, seed=4)
    assert not np.array_equal(a.images, c.images)


def test_images_are_float32_rgb_in_unit_range():
    data = make_shapes(12, seed=0, image_size=24)
    assert data.images.shape == (12, 3, 24, 24) and data.images.dtype == np.float32
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0


def test_heldout_split_never_leaks_into_training():
    assert len(HELDOUT_COMBOS) == 6 and len(SEEN_COMBOS) == 24
    assert not set(HELDOUT_COMBOS) & set(SEEN_COMBOS)
    train = make_shapes(1000, seed=0, split="train")
    train_pairs = set(zip(train.colour.tolist(), train.shape.tolist()))
    assert train_pairs == set(SEEN_COMBOS)  # every seen pair, and nothing else
    heldout = make_shapes(120, seed=0, split="heldout")
    assert set(zip(heldout.colour.tolist(), heldout.shape.tolist())) == set(HELDOUT_COMBOS)
    # every colour and every shape is still seen in training, so each held-out pair is new
    # only as a combination
    assert {c for c, _ in SEEN_COMBOS} == set(range(len(COLOURS)))
    assert {s for _, s in SEEN_COMBOS} == set(range(len(SHAPES)))
    # and no training caption names a held-out pair
    for c, s in HELDOUT_COMBOS:
        assert not any(f" {COLOURS[c]} {SHAPES[s]} " in text for text in train.captions)


def test_caption_template_and_labels_agree():
    assert caption(0, 2, 0, 0) == "a small red triangle at the top left"
    assert caption(2, 4, 4, 1) == "a large blue ring in the centre"
    data = make_shapes(30, seed=1, split="all")
    for i, text in enumerate(data.captions):
        assert text == caption(data.colour[i], data.shape[i], data.position[i], data.size[i])
    texts, attrs = all_captions()
    n = len(COLOURS) * len(SHAPES) * len(POSITIONS) * len(SIZES)
    assert len(set(texts)) == n == 300 and attrs.shape == (n, 4)


def test_attributes_are_visible_in_the_pixels():
    """A crude check of the renderer: the ink's centre lies in the named part of the image,
    its colour is the named colour, and large shapes cover more pixels than small ones."""
    data = make_shapes(60, seed=2, split="all")
    ink = data.images.max(axis=1) > 0.3                        # [N, S, S]
    rows, cols = np.mgrid[0:32, 0:32]
    for i in range(len(ink)):
        y, x = rows[ink[i]].mean(), cols[ink[i]].mean()
        where = POSITIONS[data.position[i]]
        if where == "centre":
            assert abs(y - 15.5) < 3 and abs(x - 15.5) < 3
        else:
            assert (y < 16) == where.startswith("top") and (x < 16) == where.endswith("left")
        mean_rgb = data.images[i][:, ink[i]].mean(axis=1)  # nearest colour by direction
        cosine = COLOUR_RGB @ mean_rgb / np.linalg.norm(COLOUR_RGB, axis=1)
        assert np.argmax(cosine) == data.colour[i]
    area = ink.sum(axis=(1, 2))
    assert area[data.size == 1].mean() > 1.5 * area[data.size == 0].mean()


def test_tokenizer_round_trip_and_eot_positions():
    tok = CaptionTokenizer()
    texts = ["a small red triangle at the top left", "a large blue ring in the centre"]
    ids, eot = tok.encode_batch(texts, context_length=10)
    assert ids.shape == (2, 10) and eot.tolist() == [9, 8]
    assert (ids[np.arange(2), eot] == tok.stoi[tok.EOT]).all()
    assert [tok.decode(row) for row in ids] == texts
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("a purple circle")


def test_captioned_images_have_the_photo_template_and_a_tokenizer_can_read_them():
    from tinygen.data.shapes import captioned_images, photo_caption

    assert photo_caption("Sneaker") == "a photo of a sneaker"
    assert photo_caption("Ankle boot") == "a photo of an ankle boot"
    images, captions, labels, source = captioned_images("procedural", split="test",
                                                        n_procedural=20)
    assert images.shape == (20, 1, 28, 28) and images.dtype == np.float32
    assert len(captions) == 20 and all(c.startswith("a photo of a") for c in captions)
    assert "procedural" in source
    tok = CaptionTokenizer(sorted({w for c in captions for w in c.split()}))
    ids, _ = tok.encode_batch(captions)
    assert tok.decode(ids[0]) == captions[0]
    # with Debian's Fashion-MNIST installed, the real files and their class names are used
    from tinygen.data.images import FASHION_MNIST_DIR, find_idx_files

    if find_idx_files(FASHION_MNIST_DIR, "test"):
        _, captions, labels, source = captioned_images("fashion", split="test")
        assert "fashion-mnist" in source
        assert captions[int(np.flatnonzero(labels == 7)[0])] == "a photo of a sneaker"
