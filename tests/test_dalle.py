"""DALL·E-style model: the vector quantizer (nearest code, straight-through gradient, codebook
update, k-means start, dead-code restarts), the VQ-VAE, the text-then-image token layout of
the prior, generation, reranking, the multi-head judge, and the demo end to end."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_same_loss_and_grads, torch_from, torch_twin

import tinygen as tg
from tinygen import optim
from tinygen.data.shapes import CaptionTokenizer, make_shapes
from tinygen.models.classifier import ConvClassifier, predict
from tinygen.models.clip import CLIP, CLIPConfig, embed_images, embed_texts
from tinygen.models.dalle import (
    DALLE,
    VQVAE,
    DALLEConfig,
    VectorQuantizer,
    VQVAEConfig,
    codebook_usage,
    perplexity,
    rerank,
)
from tinygen.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]


def test_nearest_is_the_brute_force_argmin():
    rng = np.random.default_rng(0)
    vq = VectorQuantizer(n_codes=7, code_dim=3)
    vq.codebook.weight.data[...] = rng.normal(size=(7, 3))
    z = rng.normal(size=(50, 3)).astype(np.float32)
    dist = ((z[:, None, :] - vq.codebook.weight.data[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(vq.nearest(z).numpy(), dist.argmin(1))


def test_straight_through_passes_the_decoder_gradient_to_the_encoder_unchanged():
    rng = np.random.default_rng(1)
    vq = VectorQuantizer(n_codes=5, code_dim=4, beta=0.25)
    z_e = tg.tensor(rng.normal(size=(2, 4, 3, 3)), requires_grad=True)
    z_st, codes, _ = vq(z_e)
    codes = codes.numpy()
    # forward: z_st holds the chosen codes
    chosen = vq.codebook.weight.data[codes.reshape(-1)].reshape(2, 3, 3, 4).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(z_st.data, chosen, rtol=1e-6)
    # backward: d(sum(w * z_st))/dz_e = w, as if quantization were the identity
    w = rng.normal(size=z_e.shape).astype(np.float32)
    (z_st * tg.tensor(w)).sum().backward()
    np.testing.assert_allclose(z_e.grad.data, w, rtol=1e-6)
    assert vq.codebook.weight.grad is None or not np.any(vq.codebook.weight.grad.data)


def test_codebook_and_commitment_losses_move_the_right_things():
    vq = VectorQuantizer(n_codes=3, code_dim=2, beta=0.25)
    vq.codebook.weight.data[...] = [[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]]
    z = np.array([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0], [11.0, 11.0]], np.float32)
    # build z_e [1, D=2, h=2, w=2] whose cells are the rows of z
    z_e = tg.tensor(z.reshape(1, 2, 2, 2).transpose(0, 3, 1, 2).copy(), requires_grad=True)
    _, codes, loss = vq(z_e)
    codes = codes.numpy()
    np.testing.assert_array_equal(codes.reshape(-1), [0, 0, 1, 1])
    # codebook loss mean((e - sg z)^2) + beta * mean((z - sg e)^2), over 4 x 2 numbers
    e = vq.codebook.weight.data[codes.reshape(-1)]
    sq = ((z - e) ** 2).mean()
    assert loss.item() == pytest.approx(sq * 1.25, rel=1e-6)
    loss.backward()
    grad = vq.codebook.weight.grad.data
    # code 0 is pulled towards the mean of its two vectors (0.5, 0.5); code 1 towards (10, 10)
    np.testing.assert_allclose(grad[0], 2 * (2 * np.array([0, 0]) - z[0] - z[1]) / 8, atol=1e-6)
    np.testing.assert_allclose(grad[1], 2 * (2 * np.array([10, 10]) - z[2] - z[3]) / 8,
                               atol=1e-6)
    np.testing.assert_array_equal(grad[2], 0)  # an unused code gets no gradient
    # an SGD step on the codebook moves code 0 towards its vectors
    optim.SGD([vq.codebook.weight], lr=1.0).step()
    assert np.linalg.norm(vq.codebook.weight.data[0] - [0.5, 0.5]) < 0.5


def test_kmeans_init_finds_separated_clusters_and_restarts_revive_dead_codes():
    rng = np.random.default_rng(2)
    centres = np.array([[0, 0], [5, 5], [-5, 5]], np.float32)
    data = (centres[rng.integers(3, size=300)] + rng.normal(0, 0.1, (300, 2))).astype(np.float32)
    vq = VectorQuantizer(n_codes=3, code_dim=2)
    vq.init_from(data, iters=10, seed=0)
    found = vq.codebook.weight.data
    for c in centres:
        assert np.min(np.linalg.norm(found - c, axis=1)) < 0.1
    # a code far from everything is never used in training, and gets restarted onto data
    vq.codebook.weight.data[2] = [100.0, 100.0]
    vq.counts[:] = 0
    vq(tg.tensor(data[:64].reshape(1, 8, 8, 2).transpose(0, 3, 1, 2).copy()))
    assert vq.counts[2] == 0 and vq.counts.sum() == 64
    moved = vq.restart_dead_codes(data, seed=0)
    assert moved >= 1 and np.any(np.all(np.isclose(data, vq.codebook.weight.data[2]), axis=1))
    assert not vq.counts.any()


def test_vqvae_shapes_tokens_round_trip_and_training_lowers_the_loss():
    tg.manual_seed(0)
    data = make_shapes(64, seed=0, image_size=16)
    model = VQVAE(VQVAEConfig(image_size=16, hidden=8, n_codes=16, code_dim=4))
    recon, codes, loss = model(data.images)
    assert recon.shape == (64, 3, 16, 16) and codes.shape == (64, 4, 4)
    tokens = model.tokenize(data.images)
    assert tokens.shape == (64, 16) and tokens.min() >= 0 and tokens.max() < 16
    assert model.detokenize(tokens).shape == (64, 3, 16, 16)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    first = loss.item()
    for _ in range(30):
        _, _, loss = model(data.images)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first
    assert 0 < codebook_usage(tokens, 16) <= 1
    assert 1 <= perplexity(tokens, 16) <= 16


def tiny_prior(tok, n_codes=12, image_tokens=6):
    return DALLE(DALLEConfig(text_vocab=tok.vocab_size, text_len=10, n_codes=n_codes,
                             image_tokens=image_tokens, n_layer=1, n_head=2, n_embd=16))


def test_layout_is_text_then_image_tokens_after_the_text_vocabulary():
    tok = CaptionTokenizer()
    prior = tiny_prior(tok)
    ids, _ = tok.encode_batch(["a small red circle at the top left"])
    codes = np.array([[0, 1, 2, 11, 5, 3]])
    seq = prior.layout(ids, codes).numpy()
    assert seq.shape == (1, 16)
    np.testing.assert_array_equal(seq[0, :10], ids[0])
    np.testing.assert_array_equal(seq[0, 10:], codes[0] + tok.vocab_size)
    with pytest.raises(ValueError, match="DALLE.layout"):
        prior.layout(ids[:, :5], codes)


def test_the_loss_is_the_cross_entropy_of_the_image_tokens_only():
    tg.manual_seed(0)
    tok = CaptionTokenizer()
    prior = tiny_prior(tok)
    captions = ["a large blue ring in the centre", "a small red cross at the top right"]
    ids, _ = tok.encode_batch(captions)
    codes = np.array([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
    seq = prior.layout(ids, codes).numpy()
    logits, _ = prior.gpt(seq[:, :-1], seq[:, 1:])
    # positions 9..14 predict the 6 image tokens; text positions are not scored
    image_logits = logits[:, 9:, :].reshape(12, -1)
    expected = F.cross_entropy(image_logits, seq[:, 10:].reshape(-1)).item()
    assert prior(ids, codes).item() == pytest.approx(expected, rel=1e-6)


def test_generate_draws_image_codes_only_and_is_repeatable():
    tok = CaptionTokenizer()
    prior = tiny_prior(tok)
    ids, _ = tok.encode_batch(["a small red circle at the top left"] * 5)
    tg.manual_seed(3)
    a = prior.generate(ids, temperature=1.0, top_k=4).numpy()
    tg.manual_seed(3)
    b = prior.generate(ids, temperature=1.0, top_k=4).numpy()
    assert a.shape == (5, 6) and a.min() >= 0 and a.max() < 12
    np.testing.assert_array_equal(a, b)
    # greedy drawing equals stepwise argmax over image codes of the full recomputation
    greedy = prior.generate(ids[:1], temperature=0).numpy()
    seq = ids[:1]
    for _ in range(6):
        logits, _ = prior.gpt(seq)
        nxt = logits.data[0, -1, tok.vocab_size:].argmax()
        seq = np.concatenate([seq, [[nxt + tok.vocab_size]]], axis=1)
    np.testing.assert_array_equal(greedy[0], seq[0, 10:] - tok.vocab_size)


def test_rerank_orders_by_clip_cosine():
    tg.manual_seed(0)
    tok = CaptionTokenizer()
    clip = CLIP(CLIPConfig(embed_dim=8, image_size=16, vision_width=8, vision_layers=1,
                           vocab_size=tok.vocab_size, text_layers=1, text_heads=2,
                           text_width=8))
    images = make_shapes(6, seed=1, image_size=16).images
    text = "a small red circle at the top left"
    order, scores = rerank(clip, tok, images, text)
    expected = embed_images(clip, images).numpy() @ embed_texts(clip, tok, [text]).numpy()[0]
    assert isinstance(order, tg.Tensor) and isinstance(scores, tg.Tensor)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-5)
    assert order.tolist() == np.argsort(-expected, kind="stable").tolist()


def test_multi_head_classifier_splits_losses_and_predicts_each_attribute():
    clf = ConvClassifier(n_classes=(6, 5, 5, 2), channels=3, width=4, hidden=8, image_size=16)
    x = tg.tensor(np.random.default_rng(0).random((3, 3, 16, 16)).astype(np.float32))
    logits = clf(x)
    assert logits.shape == (3, 18)
    assert [h.shape[1] for h in clf.split_heads(logits)] == [6, 5, 5, 2]
    labels = np.array([[0, 1, 2, 1], [5, 4, 4, 0], [3, 0, 1, 1]])
    expected = sum(F.cross_entropy(h, labels[:, i]).item()
                   for i, h in enumerate(clf.split_heads(logits)))
    assert clf.loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    read = predict(clf, x.data)
    assert read.shape == (3, 4) and read[:, 3].max() < 2


def test_demo_smoke_run_writes_its_summary(tmp_path):
    out = tmp_path / "dalle"
    result = subprocess.run([sys.executable, str(ROOT / "demos" / "dalle.py"), "--smoke",
                             "--out_dir", str(out)], check=False, capture_output=True,
                            text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("codebook_usage", "recon_mse", "prompt_acc", "prompt_acc_reranked"):
        assert key in summary
    assert (out / "heldout.png").exists() and (out / "recon.png").exists()


def test_vqvae_same_loss_and_gradients_as_pytorch():
    tg.manual_seed(0)
    config = VQVAEConfig(image_size=8, hidden=8, n_codes=16, code_dim=4)
    model = VQVAE(config)
    x = np.random.default_rng(0).random((3, 3, 8, 8), dtype=np.float32)
    with tg.no_grad():  # codes on data, so no two are near-tied for any cell
        model.quantizer.init_from(model.encode(x).permute(0, 2, 3, 1).reshape(-1, 4).data)
    twin = torch_twin("torch_dalle", "TorchVQVAE", model, 3, 8, 16, 4, config.beta)
    loss = model(x)[2]
    loss.backward()
    loss_t = twin(torch_from(x))
    loss_t.backward()
    assert_same_loss_and_grads(model, loss, twin, loss_t)
