"""The judge of generated images: scoring rules on hand-made probabilities, shapes, a short
run that learns, and the save / load cache."""

import numpy as np
import pytest

import tinygen as tg
from tinygen.data.images import procedural_images, to_float
from tinygen.models.classifier import (
    ConvClassifier,
    accuracy,
    load_classifier,
    load_or_train_classifier,
    predict,
    predict_proba,
    save_classifier,
    score_generated,
    score_probabilities,
    train_classifier,
)

PROBS = np.array([
    [0.95, 0.05, 0.00],  # confident, class 0
    [0.50, 0.50, 0.00],  # unsure
    [0.00, 0.90, 0.10],  # confident (exactly at the threshold), class 1
    [0.10, 0.00, 0.90],  # confident, class 2
    [0.92, 0.08, 0.00],  # confident, class 0
    [0.30, 0.30, 0.40],  # unsure
])


def test_score_probabilities_by_hand():
    score = score_probabilities(PROBS, threshold=0.9, min_count=1)
    assert score["confident_frac"] == pytest.approx(4 / 6)
    assert score["class_counts"] == [2, 1, 1]
    assert score["classes_covered"] == 3


def test_classes_covered_needs_min_count_confident_images():
    assert score_probabilities(PROBS, threshold=0.9, min_count=2)["classes_covered"] == 1
    # a stricter threshold drops the 0.90 and 0.92 images
    score = score_probabilities(PROBS, threshold=0.93, min_count=1)
    assert score["class_counts"] == [1, 0, 0]
    assert score["confident_frac"] == pytest.approx(1 / 6)


@pytest.fixture(scope="module")
def shapes():
    images, labels = procedural_images(400, seed=0)
    return to_float(images), labels  # [400, 1, 28, 28] in [0, 1], [400]


@pytest.fixture(scope="module")
def trained(shapes):
    tg.manual_seed(0)
    x, y = shapes
    return train_classifier(x[:300], y[:300], epochs=4, batch_size=50, lr=3e-3, log=None)


def test_classifier_shapes():
    tg.manual_seed(0)
    model = ConvClassifier(n_classes=10)
    assert model(tg.rand(3, 1, 28, 28)).shape == (3, 10)
    probs = predict_proba(model, np.zeros((7, 1, 28, 28), np.float32))
    assert isinstance(probs, tg.Tensor) and probs.shape == (7, 10)
    np.testing.assert_allclose(probs.numpy().sum(axis=1), 1, rtol=1e-5)


def test_classifier_learns_procedural_shapes(shapes, trained):
    x, y = shapes
    assert accuracy(trained, x[300:], y[300:]) > 0.5  # chance is 0.1
    score = score_generated(trained, x[300:], min_count=1)
    assert set(score) >= {"confident_frac", "classes_covered", "class_counts"}
    assert len(score["class_counts"]) == 10


def test_save_load_and_cache(tmp_path, shapes, trained):
    x, y = shapes
    path = tmp_path / "clf.safetensors"
    save_classifier(trained, path, source="shapes", train_kwargs={}, test_accuracy=0.5)
    loaded, info = load_classifier(path)
    assert info == {"source": "shapes", "train_kwargs": {}, "test_accuracy": 0.5}
    np.testing.assert_allclose(predict_proba(loaded, x[:20]).numpy(),
                               predict_proba(trained, x[:20]).numpy(), rtol=1e-5, atol=1e-6)

    messages = []
    _, info = load_or_train_classifier(path, x, y, "shapes", log=messages.append)
    assert info["source"] == "shapes" and messages[0].startswith("classifier: loaded")
    # another data source, or other training arguments: train afresh (one tiny epoch) and overwrite the cache
    _, info = load_or_train_classifier(path, x[:50], y[:50], "other", x[:50], y[:50],
                                       log=messages.append, epochs=1, batch_size=50)
    assert info["source"] == "other" and 0 <= info["test_accuracy"] <= 1
    assert load_classifier(path)[1]["source"] == "other"
    _, info = load_or_train_classifier(path, x[:50], y[:50], "other", log=messages.append,
                                       epochs=1, batch_size=25)
    assert info["train_kwargs"] == {"epochs": 1, "batch_size": 25}
    assert sum(m.startswith("classifier: loaded") for m in messages) == 1


def test_predictions_stay_on_the_classifiers_device(device):
    """predict_proba and predict give Tensors on the classifier's device (one head and
    several), and accuracy agrees with the same sums done by hand on the host."""
    tg.manual_seed(0)
    images = np.random.default_rng(1).random((6, 1, 8, 8)).astype(np.float32)
    for n_classes in (3, (2, 4)):
        model = ConvClassifier(n_classes, width=4, hidden=8, image_size=8).to(device)
        probs = predict_proba(model, images, batch_size=4)
        heads = probs if isinstance(probs, list) else [probs]
        assert all(isinstance(p, tg.Tensor) and p.device == device for p in heads)
        predicted = predict(model, images)
        assert predicted.device == device and predicted.dtype == np.int64
        want = np.stack([p.numpy().argmax(-1) for p in heads], axis=1)
        np.testing.assert_array_equal(predicted.numpy().reshape(6, -1), want)
        labels = want.copy()
        labels[:3] = (labels[:3] + 1) % 2           # three of six wrong in the first head
        assert accuracy(model, images, labels.reshape(predicted.shape)) == 0.5
