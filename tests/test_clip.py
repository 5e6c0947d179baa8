"""CLIP: the contrastive loss by hand, the temperature clamp, encoder shapes, a tiny model that
learns, and the demo end to end."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_same_loss_and_grads, torch_from, torch_twin

import tinygen as tg
from tinygen import optim
from tinygen.data.shapes import CaptionTokenizer, make_shapes
from tinygen.models.clip import (
    CLIP,
    LOGIT_SCALE_INIT,
    LOGIT_SCALE_MAX,
    CLIPConfig,
    caption_by_retrieval,
    clip_loss,
    retrieval_recall_at_1,
    train_clip,
    zero_shot_marginal,
    zero_shot_predict,
)

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(tok, width=16, vision="conv"):
    return CLIPConfig(embed_dim=width, vision=vision, image_size=16, patch_size=4,
                      vision_layers=2 if vision == "conv" else 1, vision_heads=2,
                      vision_width=width, vocab_size=tok.vocab_size, text_layers=1,
                      text_heads=2, text_width=width)


def test_clip_loss_on_a_hand_worked_2x2_case():
    # cosine similarities [[1, 0.6], [0, 0.8]]; logit_scale ln 2 doubles them
    image_embeds = tg.tensor([[1.0, 0.0], [0.0, 1.0]])
    text_embeds = tg.tensor([[1.0, 0.0], [0.6, 0.8]])
    logit_scale = tg.tensor([math.log(2.0)])
    e = math.exp
    # image -> text: softmax over each row, target on the diagonal
    row0 = -2.0 + math.log(e(2.0) + e(1.2))
    row1 = -1.6 + math.log(e(0.0) + e(1.6))
    # text -> image: softmax over each column
    col0 = -2.0 + math.log(e(2.0) + e(0.0))
    col1 = -1.6 + math.log(e(1.2) + e(1.6))
    expected = ((row0 + row1) / 2 + (col0 + col1) / 2) / 2
    loss = clip_loss(image_embeds, text_embeds, logit_scale)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_clip_loss_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    inputs = [tg.tensor(rng.normal(size=(3, 4)), dtype=np.float64, requires_grad=True),
              tg.tensor(rng.normal(size=(3, 4)), dtype=np.float64, requires_grad=True),
              tg.tensor([0.5], dtype=np.float64, requires_grad=True)]
    assert tg.gradcheck(clip_loss, inputs, atol=1e-5, rtol=1e-5)


def test_logit_scale_starts_at_one_over_007_and_is_clamped_at_ln_100():
    tok = CaptionTokenizer()
    model = CLIP(tiny_config(tok))
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07), rel=1e-6)
    assert LOGIT_SCALE_INIT < LOGIT_SCALE_MAX == pytest.approx(math.log(100))
    opt = optim.SGD(model.parameters(), lr=1.0)
    for _ in range(3):  # a gradient that pushes logit_scale up, hard
        loss = model.logit_scale.sum() * -100.0
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.clamp_logit_scale()
        assert model.logit_scale.item() <= LOGIT_SCALE_MAX + 1e-6
    assert model.logit_scale.item() == pytest.approx(LOGIT_SCALE_MAX, rel=1e-6)
    assert math.exp(model.logit_scale.item()) == pytest.approx(100.0, rel=1e-5)


@pytest.mark.parametrize("vision", ["conv", "vit"])
def test_encoders_give_unit_vectors_of_embed_dim(vision):
    tok = CaptionTokenizer()
    cfg = tiny_config(tok, vision=vision)
    model = CLIP(cfg)
    data = make_shapes(5, seed=0, image_size=16)
    ids, eot = tok.encode_batch(data.captions)
    image_embeds, text_embeds, loss = model(data.images, ids, eot)
    assert image_embeds.shape == (5, cfg.embed_dim) == text_embeds.shape
    np.testing.assert_allclose(np.linalg.norm(image_embeds.numpy(), axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text_embeds.numpy(), axis=1), 1.0, rtol=1e-5)
    assert loss.shape == () and math.isfinite(loss.item())
    # attention in the text encoder is causal: tokens after <eot> cannot change its summary
    junk = ids.copy()
    for i, k in enumerate(eot):
        junk[i, k + 1:] = tok.stoi["red"]
    np.testing.assert_allclose(model.encode_text(junk, eot).numpy(), text_embeds.numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("vision", ["conv", "vit"])
def test_tiny_clip_learns_to_match_a_batch(vision):
    tok = CaptionTokenizer()
    tg.manual_seed(0)
    model = CLIP(tiny_config(tok, width=32, vision=vision))
    data = make_shapes(8, seed=1, image_size=16, split="all")
    ids, eot = tok.encode_batch(data.captions)
    opt = model.configure_optimizers(0.0, 3e-3, (0.9, 0.98))
    first = None
    for _ in range(80):
        image_embeds, text_embeds, loss = model(data.images, ids, eot)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.clamp_logit_scale()
        first = loss.item() if first is None else first
    assert loss.item() < 0.4 * first  # from chance, ln 8, to most pairs matched
    image_to_text, text_to_image = retrieval_recall_at_1(image_embeds.numpy(),
                                                         text_embeds.numpy())
    assert image_to_text >= 0.5 and text_to_image >= 0.5


def test_conv_stem_has_the_same_filters_for_every_colour_channel():
    # swapping R and G in the input swaps the stem's R and G groups of feature maps
    tok = CaptionTokenizer()
    model = CLIP(tiny_config(tok))
    stem = model.visual.stem
    images = make_shapes(3, seed=2, image_size=16).images
    B, _, S, _ = images.shape

    def stem_maps(x):  # [B, 3 colours, c0, S, S]
        return stem(tg.tensor(x.reshape(B * 3, 1, S, S))).numpy().reshape(B, 3, -1, S, S)

    maps, swapped = stem_maps(images), stem_maps(images[:, [1, 0, 2]])
    np.testing.assert_allclose(swapped, maps[:, [1, 0, 2]], rtol=1e-5, atol=1e-6)
    assert stem.weight.shape[1] == 1  # one grey image at a time


def test_train_clip_lowers_the_loss_and_reports():
    tok = CaptionTokenizer()
    tg.manual_seed(0)
    model = CLIP(tiny_config(tok, width=16))
    data = make_shapes(64, seed=3, image_size=16)
    lines = []
    result = train_clip(model, data, tok, max_iters=30, batch_size=32, learning_rate=3e-3,
                        min_lr=3e-4, warmup_iters=3, seed=0, log_interval=10, log=lines.append)
    assert result["iters"] == 30 and result["ms_per_iter"] > 0
    assert math.isfinite(result["final_loss"]) and result["final_loss"] < math.log(32)
    assert len(lines) == 4 and lines[0].startswith("iter 0: loss")
    assert 3e-4 <= result["optimizer"].param_groups[0]["lr"] < 3.1e-4  # cosine to min_lr
    assert model.logit_scale.item() <= LOGIT_SCALE_MAX


def test_evaluation_helpers_on_known_embeddings():
    eye = np.eye(3, dtype=np.float32)
    assert retrieval_recall_at_1(eye, eye[[0, 2, 1]]) == (pytest.approx(1 / 3),
                                                          pytest.approx(1 / 3))
    assert zero_shot_predict(eye[[2, 0]], eye).tolist() == [2, 0]
    # captions 0, 1 belong to class 0 and caption 2 to class 1: an image halfway between
    # captions 0 and 1 still gets class 0 with almost all the probability
    between = np.array([[0.7, 0.7, 0.1]], np.float32)
    probs = zero_shot_marginal(between, eye, np.array([0, 0, 1]), 2, math.log(100)).numpy()
    assert probs.shape == (1, 2) and probs.sum() == pytest.approx(1.0, rel=1e-5)
    assert probs[0, 0] > 0.99
    top = caption_by_retrieval(eye[:1], eye, ["a", "b", "c"], math.log(100), k=2)
    assert top[0][0][0] == "a" and top[0][0][1] > 0.99 and len(top[0]) == 2


def test_demo_smoke_run_writes_the_summary(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "demos" / "clip.py"), "--smoke",
                             "--out_dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert json.loads(result.stdout.strip().splitlines()[-1]) == summary
    for key in ("zero_shot_acc_heldout", "zero_shot_acc_seen", "retrieval_r1"):
        assert 0.0 <= summary[key] <= 1.0
    assert (tmp_path / "captions.png").exists() and (tmp_path / "captions.txt").exists()


def test_same_loss_and_gradients_as_pytorch():
    tg.manual_seed(0)
    tokenizer = CaptionTokenizer()
    data = make_shapes(6, seed=0, split="train")
    ids, eot = tokenizer.encode_batch(data.captions)
    model = CLIP(CLIPConfig(vocab_size=tokenizer.vocab_size, vision_width=16, text_width=16,
                            text_heads=2, embed_dim=8, text_layers=1))
    twin = torch_twin("torch_clip", "TorchCLIP", model, model.config)
    loss = model(data.images, ids, eot)[2]
    loss.backward()
    loss_t = twin(torch_from(data.images), torch_from(ids), torch_from(eot))
    loss_t.backward()
    assert_same_loss_and_grads(model, loss, twin, loss_t)


def test_evaluation_stays_on_the_models_device(device):
    """Embeddings, zero-shot probabilities and predictions come back on the model's device
    (Tensors, as a PyTorch user gets them), not as CPU copies."""
    from tinygen.data.shapes import CaptionTokenizer
    from tinygen.models.clip import (
        CLIP,
        CLIPConfig,
        embed_images,
        embed_texts,
        zero_shot_classifier,
    )

    tokenizer = CaptionTokenizer()
    tg.manual_seed(0)
    model = CLIP(CLIPConfig(vocab_size=tokenizer.vocab_size, text_layers=1, vision_layers=2,
                            vision_width=16, text_width=16, embed_dim=8)).to(device)
    images = np.random.default_rng(0).random((5, 3, 32, 32)).astype(np.float32)
    image_embeds = embed_images(model, images, batch_size=2)
    text_embeds = embed_texts(model, tokenizer, ["a red circle", "a blue square"])
    classes = zero_shot_classifier(model, tokenizer, [["a red circle"], ["a blue square"]])
    probs = zero_shot_marginal(image_embeds, text_embeds, np.array([0, 1]), 2, 1.0)
    predicted = zero_shot_predict(image_embeds, classes)
    for t in (image_embeds, text_embeds, classes, probs, predicted):
        assert isinstance(t, tg.Tensor) and t.device == device
    assert image_embeds.shape == (5, 8) and classes.shape == (2, 8)
    np.testing.assert_allclose((classes * classes).sum(axis=1).numpy(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1).numpy(), 1.0, rtol=1e-5)
    assert predicted.dtype == np.int64 and set(predicted.tolist()) <= {0, 1}
