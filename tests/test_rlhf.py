"""RLHF pieces (tinygen/rl/task.py, reward_model.py, rlhf.py, dpo.py) against hand-worked
numbers, and a smoke run of demos/rlhf.py."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import tinygen as tg
from tinygen.models.gpt import GPT, GPTConfig
from tinygen.rl.dpo import dpo_loss
from tinygen.rl.reward_model import RewardModel, bradley_terry_loss, pairwise_accuracy
from tinygen.rl.rlhf import (
    AdaptiveKLController,
    PolicyWithValue,
    kl_penalized_rewards,
    pack,
    response_logprobs,
    response_mask,
    sequence_logprob,
    sft_targets,
    token_gae,
)
from tinygen.rl.task import SortTask, head_to_head

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log1p_exp(x):
    return math.log1p(math.exp(x))     # = -log σ(-x)


def tiny_gpt(task, seed=0):
    tg.manual_seed(seed)
    config = GPTConfig(block_size=task.prompt_len + task.response_len,
                       vocab_size=task.tokenizer().vocab_size, n_layer=1, n_head=2, n_embd=16)
    return GPT(config)


# ---- the task -------------------------------------------------------------------------------
def test_task_is_deterministic_by_seed():
    task = SortTask()

    def draw(seed):
        rng = np.random.default_rng(seed)
        prompts = task.prompts(50, rng)
        return prompts, [task.demonstration(p, rng) for p in prompts]

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)
    prompts, demos = draw(3)
    for p in prompts:
        assert len(p) == task.prompt_len and p.endswith("=")
        letters = p.strip("_=")
        assert task.min_len <= len(letters) <= task.max_len
        assert len(set(letters)) == len(letters)
    assert all(d.endswith(".") for d in demos)
    assert not set(task.prompts(200, np.random.default_rng(5), exclude=prompts)) & set(prompts)


def test_hidden_rule_scores_hand_made_answers():
    task = SortTask()
    prompt = "__dbfa="                              # the answer is "abdf"
    assert task.true_score(prompt, "abdf.") == 1.0
    assert task.true_score(prompt, "abdf.xyz") == 1.0     # what follows "." is not read
    assert task.true_score(prompt, "abfd.") == 0.5        # swapped neighbours: 2 of 4
    assert task.true_score(prompt, "abd.") == 0.75        # dropped letter: 3 of 4
    assert task.true_score(prompt, "abddf.") == 0.6       # repeated letter: 3 of max(4, 5)
    assert task.true_score(prompt, "abdfa.") == 0.8       # one too many: 4 of 5
    assert task.true_score(prompt, "dbfa.") == 0.25       # unsorted copy: only "b" in place
    assert task.true_score(prompt, ".") == 0.0


def test_demonstrations_are_right_exactly_when_told():
    rng = np.random.default_rng(0)
    prompts = [p for p in SortTask().prompts(200, rng) if list(p.strip("_=")) !=
               sorted(p.strip("_="))]
    always, never = SortTask(p_correct=1.0), SortTask(p_correct=0.0)
    assert all(always.true_score(p, always.demonstration(p, rng)) == 1.0 for p in prompts)
    assert all(never.true_score(p, never.demonstration(p, rng)) < 1.0 for p in prompts)
    lazy = SortTask(p_correct=0.0, p_lazy=1.0)         # the habit: one letter short
    assert lazy.demonstration("__dbfa=", rng) == "abd."


def test_head_to_head_counts_ties_half():
    out = head_to_head([1.0, 0.5, 0.2, 1.0], [0.5, 0.5, 0.4, 0.0])
    assert out["win_rate"] == pytest.approx(0.5 + 0.5 * 0.25)    # 2 wins, 1 tie, 1 loss
    assert out["tie_rate"] == 0.25
    assert out["win_rate_no_ties"] == pytest.approx(2 / 3)


# ---- packing and masks ----------------------------------------------------------------------
def test_response_mask_stops_after_first_eos():
    eos = 9
    ids = np.array([[1, eos, 2, eos], [1, 2, 3, 4], [eos, 1, 1, 1]])
    np.testing.assert_array_equal(response_mask(ids, eos).numpy(),
                                  [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])


def test_sft_targets_cover_the_response_only():
    task = SortTask(max_len=3)                         # prompt 4 characters, response 5
    tokens, mask = pack(task.tokenizer(), ["_ba="], ["ab."], task.response_len)
    P = task.prompt_len
    ids = task.tokenizer().encode("_ba=ab.")
    assert tokens.shape == (1, P + task.response_len)
    np.testing.assert_array_equal(tokens[0, :7].numpy(), ids)
    np.testing.assert_array_equal(mask.numpy(), [[1, 1, 1, 0, 0]])
    targets = sft_targets(tokens, mask, P)            # predicts tokens[1:]
    np.testing.assert_array_equal(targets[0].numpy(), [-1, -1, -1] + ids[4:] + [-1, -1])


class WordTokenizer:
    """A tokenizer whose tokens are several characters long: one id per word."""

    def __init__(self, words):
        self.ids = {w: i for i, w in enumerate(words)}

    def encode(self, text):
        return [self.ids[w] for w in text.split()]


def test_pack_masks_tokens_not_characters(device):
    # regression: the mask was 1 on the first len(response) *characters* and the padding
    # counted the prompt's characters, wrong for any tokenizer with multi-character tokens
    tok = WordTokenizer(["<pad>", "sort", "these", "ba", "ab", "done"])
    tokens, mask = pack(tok, ["sort ba", "these ab"], ["ab done", "ab"], response_len=4,
                        device=device)
    assert tokens.device == mask.device == device and tokens.dtype == np.int64
    np.testing.assert_array_equal(tokens.numpy(), [[1, 3, 4, 5, 0, 0], [2, 4, 4, 0, 0, 0]])
    np.testing.assert_array_equal(mask.numpy(), [[1, 1, 0, 0], [1, 0, 0, 0]])
    with pytest.raises(ValueError, match="pack: every prompt must encode"):
        pack(tok, ["sort", "these ab"], ["ab", "ab"], response_len=4)


# ---- the reward model -----------------------------------------------------------------------
def test_bradley_terry_loss_hand_worked():
    r_chosen = tg.tensor([2.0, 0.0], requires_grad=True)
    r_rejected = tg.tensor([1.0, 1.0], requires_grad=True)
    loss = bradley_terry_loss(r_chosen, r_rejected)   # -log σ(1) and -log σ(-1), averaged
    expected = (log1p_exp(-1.0) + log1p_exp(1.0)) / 2     # 0.81326...
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    sigmoid = 1 / (1 + np.exp(-np.array([1.0, -1.0])))
    np.testing.assert_allclose(r_chosen.grad.numpy(), -(1 - sigmoid) / 2, rtol=1e-6)
    np.testing.assert_allclose(r_rejected.grad.numpy(), (1 - sigmoid) / 2, rtol=1e-6)
    assert pairwise_accuracy(r_chosen, r_rejected) == 0.5


def test_reward_model_reads_the_last_response_token():
    task = SortTask()
    rm = RewardModel(tiny_gpt(task))
    tokens, _ = pack(task.tokenizer(), ["__dbfa="] * 2, ["abdf.", "abdf.cc"],
                     task.response_len)
    last = task.prompt_len + np.array([4, 4])          # both end at the "."
    r = rm(tokens, last).numpy()
    assert r.shape == (2,)
    assert r[0] == pytest.approx(r[1], abs=1e-6)       # what follows cannot change it


# ---- log-probabilities, the KL-penalised reward, the controller, GAE ------------------------
def test_response_logprobs_match_the_full_forward():
    task = SortTask()
    gpt = tiny_gpt(task)
    tokens, mask = pack(task.tokenizer(), ["__dbfa=", "abcdef="], ["abdf.", "ab."],
                        task.response_len)
    P = task.prompt_len
    logp = response_logprobs(gpt, tokens, P).numpy()                # [B, R]
    logits, _ = gpt(tokens[:, :-1], tg.zeros_like(tokens[:, 1:]))  # all positions
    log_softmax = logits.log_softmax(axis=-1).numpy()
    for b in range(2):
        for t in range(task.response_len):
            expected = log_softmax[b, P - 1 + t, tokens[b, P + t].item()]
            assert logp[b, t] == pytest.approx(expected, abs=1e-5)
    seq = sequence_logprob(gpt, tokens, mask, P).numpy()
    np.testing.assert_allclose(seq, (logp * mask.numpy()).sum(axis=1), rtol=1e-5)
    policy = PolicyWithValue(gpt)
    policy_logits, values = policy(tokens, P)
    np.testing.assert_allclose(policy_logits.numpy(), logits.numpy()[:, P - 1:], atol=1e-5)
    assert values.shape == (2, task.response_len) and not values.numpy().any()


def test_kl_penalized_rewards_layout():
    scores = np.array([2.0, -1.0], dtype=np.float32)
    logprobs = np.array([[-0.5, -1.0, -0.2, -3.0], [-0.1, -9.0, -9.0, -9.0]], np.float32)
    ref_logprobs = np.array([[-1.0, -1.0, -0.7, 0.0], [-0.6, 0.0, 0.0, 0.0]], np.float32)
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], np.float32)    # lengths 3 and 1
    rewards, kl = kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, kl_coef=0.1)
    np.testing.assert_allclose(kl.numpy(), [[0.5, 0.0, 0.5, 0.0], [0.5, 0.0, 0.0, 0.0]],
                               atol=1e-6)
    # -0.1 * KL on every token, the score added at the last real token, nothing on padding
    np.testing.assert_allclose(rewards.numpy(), [[-0.05, 0.0, -0.05 + 2.0, 0.0],
                                         [-0.05 - 1.0, 0.0, 0.0, 0.0]], atol=1e-6)


def test_adaptive_kl_controller_hand_worked():
    ctl = AdaptiveKLController(init_kl_coef=0.2, target=6.0, horizon=10_000)
    # KL 9 is 50% over target: the error is clipped to +0.2
    assert ctl.update(9.0, n_steps=256) == pytest.approx(0.2 * (1 + 0.2 * 256 / 10_000))
    # KL 5.4 is 10% under: kl_coef shrinks by 0.1 * 256 / 10000
    assert ctl.update(5.4, n_steps=256) == pytest.approx(0.201024 * (1 - 0.1 * 0.0256))
    assert ctl.value == pytest.approx(0.2005094, rel=1e-6)
    ctl.update(0.0, n_steps=10_000)                     # far under: clipped to -0.2
    assert ctl.value == pytest.approx(0.2005094 * 0.8, rel=1e-6)


def test_token_gae_stays_inside_each_response():
    rewards = np.array([[0.1, 0.2, 1.0, 0.0], [0.5, 0.0, 0.0, 0.0]], np.float32)
    values = np.array([[0.0, 0.0, 0.0, 5.0], [0.0, 5.0, 5.0, 5.0]], np.float32)  # 5: padding
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], np.float32)
    adv, ret = (x.numpy() for x in token_gae(rewards, values, mask, gamma=1.0, gae_lambda=1.0))
    # with γ = λ = 1 and zero values the advantage is the reward still to come
    np.testing.assert_allclose(adv[0, :3], [1.3, 1.2, 1.0], atol=1e-6)
    np.testing.assert_allclose(adv[1, :1], [0.5], atol=1e-6)
    np.testing.assert_allclose(ret[mask > 0], adv[mask > 0], atol=1e-6)


# ---- DPO ------------------------------------------------------------------------------------
def test_dpo_loss_hand_worked_and_gradient_sign():
    chosen = tg.tensor([-1.0], requires_grad=True)      # log π(y_w)
    rejected = tg.tensor([-3.0], requires_grad=True)    # log π(y_l)
    ref_chosen, ref_rejected = np.array([-2.0]), np.array([-2.0])
    loss, chosen_rewards, rejected_rewards = dpo_loss(chosen, rejected, ref_chosen,
                                                      ref_rejected, beta=0.5)
    # β [(−1 + 2) − (−3 + 2)] = 0.5 * 2 = 1, loss = -log σ(1)
    assert loss.item() == pytest.approx(log1p_exp(-1.0), rel=1e-6)
    np.testing.assert_allclose(chosen_rewards.numpy(), [0.5])
    np.testing.assert_allclose(rejected_rewards.numpy(), [-0.5])
    assert not chosen_rewards.requires_grad
    loss.backward()
    # descending the loss raises log π(y_w) and lowers log π(y_l): -β(1 - σ(1)) and its negative
    g = 0.5 * (1 - 1 / (1 + math.exp(-1.0)))
    assert chosen.grad.item() == pytest.approx(-g, rel=1e-6)
    assert rejected.grad.item() == pytest.approx(g, rel=1e-6)


def test_dpo_step_on_a_gpt_raises_the_chosen_response():
    task = SortTask()
    gpt = tiny_gpt(task)
    tokens, mask = pack(task.tokenizer(), ["__dbfa="] * 2, ["abdf.", "dbfa."],
                        task.response_len)
    P = task.prompt_len
    with tg.no_grad():
        ref_logps = sequence_logprob(gpt, tokens, mask, P).numpy()
    # a small step: with large ones both log-probabilities can fall (a known DPO effect),
    # only the margin between them is sure to grow
    optimizer = tg.optim.SGD(gpt.parameters(), lr=0.01)
    logps = sequence_logprob(gpt, tokens, mask, P)
    loss, _, _ = dpo_loss(logps[:1], logps[1:], ref_logps[:1], ref_logps[1:], beta=1.0)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with tg.no_grad():
        new_logps = sequence_logprob(gpt, tokens, mask, P).numpy()
    assert new_logps[0] > ref_logps[0]                 # the chosen answer became likelier
    assert new_logps[0] - new_logps[1] > ref_logps[0] - ref_logps[1]


# ---- the demo -------------------------------------------------------------------------------
def test_demo_smoke(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "demos", "rlhf.py"), "--smoke",
                           "--out_dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(tmp_path / "summary.json") as f:
        summary = json.load(f)
    for key in ("rm_accuracy", "ppo_win_rate", "dpo_win_rate", "ppo_kl", "sft_true_score",
                "ppo_true_score", "dpo_true_score", "seconds", "seed"):
        assert key in summary
    assert 0.0 <= summary["ppo_win_rate"] <= 1.0
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == summary


def test_rlhf_helpers_take_tensors_as_well_as_arrays():
    from tinygen.rl.rlhf import kl_penalized_rewards, last_index, response_mask, token_gae

    ids = np.array([[3, 1, 4, 1], [1, 5, 9, 2]])
    mask = response_mask(ids, eos_id=1)
    np.testing.assert_array_equal(response_mask(tg.tensor(ids), 1).numpy(), mask.numpy())
    np.testing.assert_array_equal(last_index(tg.tensor(mask), 2).numpy(),
                                  last_index(mask, 2).numpy())
    mask = mask.numpy()
    rng = np.random.default_rng(0)
    lp, ref_lp = (rng.normal(size=(2, 4)).astype(np.float32) for _ in range(2))
    scores = np.array([1.0, -1.0], np.float32)
    want = kl_penalized_rewards(scores, lp, ref_lp, mask, 0.1)
    got = kl_penalized_rewards(*(tg.tensor(x) for x in (scores, lp, ref_lp, mask)), 0.1)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    want = [w.numpy() for w in want]
    values = rng.normal(size=(2, 4)).astype(np.float32)
    for g, w in zip(token_gae(tg.tensor(want[0]), tg.tensor(values), tg.tensor(mask), 1.0, 0.95),
                    token_gae(want[0], values, mask, 1.0, 0.95)):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
