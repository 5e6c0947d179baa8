"""RLHF on a toy instruction-following task, top to bottom, after Ziegler et al. 2019 and
InstructGPT (Ouyang et al. 2022), with DPO (Rafailov et al. 2023) beside it:

    0. the task: sort the letters of a prompt; a hidden rule (code) plays the labeller
    1. SFT: fine-tune a small char-level GPT on sloppy demonstrations (loss on responses only)
    2. preferences: two SFT samples per prompt, the hidden rule picks the better one
    3. reward model: GPT trunk + scalar head, Bradley–Terry loss on the pairs
    4. PPO against the reward model, with a per-token KL penalty to the frozen SFT model
       and the adaptive KL controller
    5. DPO on the same pairs, from the same SFT model
    6. before/after: the hidden rule's score, head-to-head win rate against SFT, the reward
       model's score and the KL to the reference, and sample completions; SFT decoded
       greedily as well, to show that sharper decoding does not cure the demonstrators' habit

    python demos/rlhf.py                       # about 2 minutes on 2 CPU cores
    python demos/rlhf.py --seed 2 --out_dir out/rlhf_2
    python demos/rlhf.py --smoke               # a few seconds, to check that it all runs

Win rate: for each held-out prompt, one sampled completion from each policy; the hidden
rule's graded score decides; a tie (after PPO, nearly always: both exact) counts half
(win_rate), or ties are left out (win_rate_no_ties). KL is the sum over a response of
log π - log π_ref, averaged over the policy's own samples: the sampled estimate of
KL(π ‖ π_ref) in nats per response. It ends with one JSON line, also written to
<out_dir>/summary.json, and draws each stage's training loss into <out_dir>/loss.png.
"""

import dataclasses
import os
import time
from dataclasses import dataclass

import numpy as np

import tinygen as tg
from tinygen.checks import at_least, between, check_fields, require
from tinygen.cli import parse_config
from tinygen.models.gpt import GPT, GPTConfig
from tinygen.optim import clip_grad_norm_
from tinygen.report import save_curves, write_summary
from tinygen.rl.dpo import batched_sequence_logprob, dpo_batch_loss, implicit_reward_accuracy
from tinygen.rl.reward_model import RewardModel, bradley_terry_loss, copy_gpt, pairwise_accuracy
from tinygen.rl.rlhf import (
    AdaptiveKLController,
    PolicyWithValue,
    RLHFConfig,
    kl_penalized_rewards,
    last_index,
    pack,
    ppo_update,
    response_logprobs,
    rollout,
    sample_responses,
    sft_targets,
    token_gae,
)
from tinygen.rl.task import EOS, SortTask, answer_of, head_to_head


@dataclass
class Args(RLHFConfig):  # 4. PPO's fields (batch_size, clip_coef, kl_target, ...) from RLHFConfig
    seed: int = 1
    out_dir: str = "out/rlhf"
    device: str = "cpu"
    threads: int = at_least(1, 1)   # BLAS threads: the matrices here are tiny, and OpenBLAS's
    #                                 threads cost more than they save (demos/ppo_cartpole.py)
    smoke: bool = False             # a tiny run of a few seconds
    # the task (tinygen/rl/task.py)
    min_len: int = at_least(3, 1)   # fewest letters in a prompt
    max_len: int = at_least(6, 1)   # most letters in a prompt
    p_correct: float = between(0.15, 0.0, 1.0)  # how often a demonstration is exactly right
    p_lazy: float = between(0.4, 0.0, 1.0)  # how often it stops one letter early (the habit)
    eval_prompts: int = at_least(1000, 1)  # held-out prompts for the before/after table
    # the model: a char-level GPT
    n_layer: int = at_least(2, 1)
    n_head: int = at_least(4, 1)
    n_embd: int = at_least(64, 1)   # a multiple of n_head
    # 1. supervised fine-tuning
    sft_examples: int = at_least(20_000, 1)  # demonstrations
    sft_iters: int = at_least(1500, 0)
    sft_batch_size: int = at_least(64, 1)
    sft_lr: float = at_least(1e-3, 0.0)
    # 2-3. preferences and the reward model
    pref_prompts: int = at_least(10_000, 2)  # prompts with two SFT samples each (ties dropped)
    pref_holdout: float = between(0.15, 0.0, 1.0)  # fraction of pairs (own prompts) held out
    rm_iters: int = at_least(800, 0)
    rm_batch_size: int = at_least(64, 1)
    rm_lr: float = at_least(3e-4, 0.0)
    # 4. PPO: the fields of tinygen.rl.rlhf.RLHFConfig, and
    ppo_iters: int = at_least(200, 1)  # rollouts
    # 5. DPO
    dpo_beta: float = at_least(1.0, 0.0)  # β: strength of the implicit KL constraint
    dpo_iters: int = at_least(400, 0)
    dpo_batch_size: int = at_least(64, 1)  # pairs per step
    dpo_lr: float = at_least(5e-5, 0.0)
    # samples
    num_samples: int = at_least(6, 1)  # completions shown before/after

    def __post_init__(self):
        super().__post_init__()  # the library config's own checks
        check_fields(self)
        require(self.max_len >= self.min_len, "max_len", self.max_len,
                f"must be >= min_len={self.min_len}")
        require(self.p_correct + self.p_lazy <= 1, "p_lazy", self.p_lazy,
                f"p_correct + p_lazy must be <= 1 (p_correct={self.p_correct})")
        require(self.n_embd % self.n_head == 0, "n_head", self.n_head,
                f"must divide n_embd={self.n_embd}")
        require(self.num_minibatches <= self.batch_size, "num_minibatches",
                self.num_minibatches, f"must be <= batch_size={self.batch_size}")
        require(self.dpo_beta > 0, "dpo_beta", self.dpo_beta, "must be > 0")


def parse_args():
    args = parse_config(Args, __doc__)
    if args.smoke:
        args = dataclasses.replace(args, eval_prompts=64, sft_examples=512, sft_iters=20,
                                   pref_prompts=128, rm_iters=10, ppo_iters=2, batch_size=16,
                                   dpo_iters=5, num_samples=2)
    return args


args = parse_args()
tg.set_num_threads(args.threads)
os.makedirs(args.out_dir, exist_ok=True)
tg.manual_seed(args.seed)                  # weights, sampling, minibatch order
rng = np.random.default_rng(args.seed)     # the task's prompts and demonstrations
t_start = time.time()
stage_seconds = {}
curves = {"SFT loss": [], "reward model loss": [], "PPO value loss": [], "DPO loss": []}


def log_stage(name, t0):
    stage_seconds[name] = round(time.time() - t0, 1)
    print(f"[{name}: {stage_seconds[name]:.1f}s]")


# ---- 0. the task ----------------------------------------------------------------------------
task = SortTask(min_len=args.min_len, max_len=args.max_len, p_correct=args.p_correct,
                p_lazy=args.p_lazy)
tokenizer = task.tokenizer()
P, R = task.prompt_len, task.response_len
eos_id = tokenizer.encode(EOS)[0]
eval_prompts = task.prompts(args.eval_prompts, rng)                    # held out throughout
holdout_pref_prompts = task.prompts(int(args.pref_prompts * args.pref_holdout), rng,
                                    exclude=eval_prompts)
held_out = set(eval_prompts) | set(holdout_pref_prompts)       # never trained on
print(f"task: sort {args.min_len}-{args.max_len} letters of {task.letters!r}; demonstrations "
      f"right {args.p_correct:.0%} of the time; {len(eval_prompts)} held-out prompts")


def encode_prompts(prompts):
    return np.array([tokenizer.encode(p) for p in prompts], dtype=np.int64)


def decode_responses(tokens):
    return [tokenizer.decode(row[P:]) for row in tg.as_tensor(tokens).numpy()]


# ---- 1. supervised fine-tuning on demonstrations ---------------------------------------------
t0 = time.time()
sft_prompts = task.prompts(args.sft_examples, rng, exclude=held_out)
demos = [task.demonstration(p, rng) for p in sft_prompts]
demo_score = np.mean([task.true_score(p, d) for p, d in zip(sft_prompts, demos)])
sft_tokens, sft_mask = pack(tokenizer, sft_prompts, demos, R, device=args.device)
sft_y = sft_targets(sft_tokens, sft_mask, P)
print(f"\n1. SFT on {len(demos):,} demonstrations (hidden-rule score {demo_score:.3f}), e.g. "
      + ", ".join(f"{p}{d}" for p, d in zip(sft_prompts[:4], demos[:4])))
model_config = GPTConfig(block_size=P + R, vocab_size=tokenizer.vocab_size,
                         n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd)
sft = GPT(model_config)
sft.to(args.device)
optimizer = sft.configure_optimizers(0.0, args.sft_lr, (0.9, 0.99))
print(f"GPT: {sft.num_parameters():,} parameters")
for it in range(args.sft_iters + 1):
    ix = rng.integers(len(sft_tokens), size=args.sft_batch_size)
    x, y = sft_tokens[ix, :-1], sft_y[ix]
    _, loss = sft(x, y)
    optimizer.zero_grad()
    loss.backward()
    clip_grad_norm_(sft.parameters(), 1.0)
    optimizer.step()
    curves["SFT loss"].append(loss.detach())  # read at log lines and at the end
    if it % max(args.sft_iters // 5, 1) == 0:
        print(f"sft iter {it:5d}: loss {curves['SFT loss'][-1].item():.4f}")
log_stage("sft", t0)

# ---- 2. preference pairs labelled by the hidden rule ----------------------------------------
t0 = time.time()


def preference_pairs(prompts):
    """Two SFT samples per prompt; the hidden rule picks chosen and rejected; ties dropped."""
    tokens_a, mask_a = (t.numpy() for t in sample_responses(sft, encode_prompts(prompts), R,
                                                             eos_id))
    tokens_b, mask_b = (t.numpy() for t in sample_responses(sft, encode_prompts(prompts), R,
                                                             eos_id))
    texts_a, texts_b = decode_responses(tokens_a), decode_responses(tokens_b)
    score_a = np.array([task.true_score(p, y) for p, y in zip(prompts, texts_a)])
    score_b = np.array([task.true_score(p, y) for p, y in zip(prompts, texts_b)])
    keep = score_a != score_b
    a_wins = (score_a > score_b)[keep, None]
    return {"chosen_tokens": np.where(a_wins, tokens_a[keep], tokens_b[keep]),
            "chosen_mask": np.where(a_wins, mask_a[keep], mask_b[keep]),
            "rejected_tokens": np.where(a_wins, tokens_b[keep], tokens_a[keep]),
            "rejected_mask": np.where(a_wins, mask_b[keep], mask_a[keep])}


pref_train_prompts = task.prompts(args.pref_prompts - len(holdout_pref_prompts), rng,
                                  exclude=held_out)
pairs = preference_pairs(pref_train_prompts)
pairs_holdout = preference_pairs(holdout_pref_prompts)
n_pairs = len(pairs["chosen_tokens"])
print(f"\n2. preferences: {n_pairs:,} training pairs, {len(pairs_holdout['chosen_tokens']):,} "
      f"held-out pairs (pairs of equal score dropped)")
log_stage("preferences", t0)

# ---- 3. the reward model ----------------------------------------------------------------------
t0 = time.time()
reward_model = RewardModel(sft)
rm_optimizer = tg.optim.AdamW(reward_model.parameters(), lr=args.rm_lr, weight_decay=0.0)


def rm_scores(tokens, mask):
    return reward_model(tg.as_tensor(tokens, device=args.device), last_index(mask, P))


@tg.no_grad()
def rm_accuracy(p):
    return pairwise_accuracy(rm_scores(p["chosen_tokens"], p["chosen_mask"]),
                             rm_scores(p["rejected_tokens"], p["rejected_mask"]))


print("\n3. reward model (Bradley-Terry loss)")
for it in range(args.rm_iters + 1):
    ix = rng.integers(n_pairs, size=args.rm_batch_size)
    tokens = np.concatenate([pairs["chosen_tokens"][ix], pairs["rejected_tokens"][ix]])
    mask = np.concatenate([pairs["chosen_mask"][ix], pairs["rejected_mask"][ix]])
    r = rm_scores(tokens, mask)                          # chosen and rejected in one batch
    loss = bradley_terry_loss(r[:args.rm_batch_size], r[args.rm_batch_size:])
    rm_optimizer.zero_grad()
    loss.backward()
    clip_grad_norm_(reward_model.parameters(), 1.0)
    rm_optimizer.step()
    curves["reward model loss"].append(loss.detach())  # read at log lines and at the end
    if it % max(args.rm_iters // 4, 1) == 0:
        print(f"rm iter {it:5d}: loss {curves['reward model loss'][-1].item():.4f}, held-out accuracy "
              f"{rm_accuracy(pairs_holdout):.3f}")
rm_acc = rm_accuracy(pairs_holdout)
# normalise the reward to mean 0, std 1 on the SFT policy's samples (Ziegler et al.)
norm_tokens, norm_mask = sample_responses(sft, encode_prompts(pref_train_prompts[:512]), R,
                                          eos_id)
reward_model.normalize(norm_tokens, last_index(norm_mask, P))
reward_model.eval()
print(f"reward model: held-out pairwise accuracy {rm_acc:.3f}")
log_stage("reward_model", t0)

# ---- 4. PPO against the reward model, with the KL penalty ---------------------------------
t0 = time.time()
ref = copy_gpt(sft)                                  # π_ref: the frozen SFT model
policy = PolicyWithValue(sft)
ppo_optimizer = tg.optim.Adam(policy.parameters(), lr=args.learning_rate, eps=1e-5)
kl_ctl = AdaptiveKLController(args.init_kl_coef, args.kl_target, args.kl_horizon)
ppo_prompts = task.prompts(args.ppo_iters * args.batch_size, rng, exclude=held_out)
print(f"\n4. PPO: {args.ppo_iters} rollouts of {args.batch_size} responses, KL target "
      f"{args.kl_target} nats")
for it in range(args.ppo_iters):
    if args.anneal_lr:
        ppo_optimizer.set_lr((1 - it / args.ppo_iters) * args.learning_rate)
    prompts = ppo_prompts[it * args.batch_size:(it + 1) * args.batch_size]
    batch = rollout(policy, ref, reward_model, encode_prompts(prompts), R, eos_id)
    rewards, kl = kl_penalized_rewards(batch["scores"], batch["logprobs"],
                                       batch["ref_logprobs"], batch["mask"], kl_ctl.value)
    batch["advantages"], batch["returns"] = token_gae(rewards, batch["values"], batch["mask"],
                                                      args.gamma, args.gae_lambda)
    stats = ppo_update(policy, ppo_optimizer, batch, args)
    mean_kl = kl.sum(axis=1).mean().item()            # nats per response
    kl_coef = kl_ctl.value
    kl_ctl.update(mean_kl, args.batch_size)
    curves["PPO value loss"].append(stats["value_loss"])
    if it % max(args.ppo_iters // 10, 1) == 0 or it == args.ppo_iters - 1:
        true = np.mean([task.true_score(p, y) for p, y in   # for our eyes: PPO never sees it
                        zip(prompts, decode_responses(batch["tokens"]))])
        print(f"ppo iter {it:4d}: rm score {batch['scores'].mean().item():+.3f}, true score "
              f"{true:.3f}, kl {mean_kl:.3f} (kl_coef {kl_coef:.3f}) | entropy "
              f"{stats['entropy']:.3f}, clipfrac {stats['clipfrac']:.3f}, approx_kl "
              f"{stats['approx_kl']:.4f}, value_loss {stats['value_loss']:.4f}")
log_stage("ppo", t0)

# ---- 5. DPO on the same preference pairs --------------------------------------------------
t0 = time.time()
dpo_policy = copy_gpt(sft)
dpo_optimizer = tg.optim.Adam(dpo_policy.parameters(), lr=args.dpo_lr)
for p in (pairs, pairs_holdout):       # log π_ref(y|x) once: the reference never changes
    p["ref_chosen_logps"] = batched_sequence_logprob(ref, p["chosen_tokens"],
                                                     p["chosen_mask"], P)
    p["ref_rejected_logps"] = batched_sequence_logprob(ref, p["rejected_tokens"],
                                                       p["rejected_mask"], P)

print(f"\n5. DPO on the {n_pairs:,} training pairs, beta {args.dpo_beta}")
for it in range(args.dpo_iters + 1):
    ix = rng.integers(n_pairs, size=args.dpo_batch_size)
    loss, chosen_rewards, rejected_rewards = dpo_batch_loss(
        dpo_policy, {k: v[ix] for k, v in pairs.items()}, P, args.dpo_beta)
    dpo_optimizer.zero_grad()
    loss.backward()
    clip_grad_norm_(dpo_policy.parameters(), 1.0)
    dpo_optimizer.step()
    curves["DPO loss"].append(loss.detach())  # read at log lines and at the end
    if it % max(args.dpo_iters // 5, 1) == 0:
        print(f"dpo iter {it:5d}: loss {curves['DPO loss'][-1].item():.4f}, reward margin "
              f"{(chosen_rewards - rejected_rewards).mean().item():+.3f}, held-out pair accuracy "
              f"{implicit_reward_accuracy(dpo_policy, pairs_holdout, P):.3f}")
dpo_acc = implicit_reward_accuracy(dpo_policy, pairs_holdout, P)
log_stage("dpo", t0)

# ---- 6. before and after ------------------------------------------------------------------
t0 = time.time()


@tg.no_grad()
def evaluate(gpt, temperature=1.0):
    """One completion per held-out prompt (sampled; greedy at temperature 0): the hidden
    rule's score, the reward model's score and the KL to the reference (the sum over the
    response of log π - log π_ref, the sampled estimate of KL(π ‖ π_ref))."""
    tokens, mask = sample_responses(gpt, encode_prompts(eval_prompts), R, eos_id, temperature)
    texts = decode_responses(tokens)
    true = np.array([task.true_score(p, y) for p, y in zip(eval_prompts, texts)])
    logp = response_logprobs(gpt, tokens, P).numpy()
    ref_logp = response_logprobs(ref, tokens, P).numpy()
    kl = ((logp - ref_logp) * mask.numpy()).sum(axis=1)
    rm = rm_scores(tokens, mask).numpy()
    return {"texts": texts, "true": true, "exact": float((true == 1).mean()),
            "rm": float(rm.mean()), "kl": float(kl.mean())}


# SFT decoded greedily too: a sharper SFT, to show that decoding alone cannot undo the habit
results = {"SFT": evaluate(sft), "SFT greedy": evaluate(sft, temperature=0),
           "PPO": evaluate(policy.gpt), "DPO": evaluate(dpo_policy)}
wins = {name: head_to_head(results[name]["true"], results["SFT"]["true"])
        for name in ("SFT greedy", "PPO", "DPO")}
log_stage("evaluation", t0)

print(f"\n6. before / after on {len(eval_prompts)} held-out prompts (one completion each)")
print(f"{'policy':12s}{'true score':>11s}{'exact':>7s}{'RM score':>10s}{'KL to SFT':>11s}"
      f"{'win vs SFT':>12s}{'(no ties)':>11s}{'ties':>7s}")
for name, res in results.items():
    w = wins.get(name)
    versus = (f"{w['win_rate']:12.3f}{w['win_rate_no_ties']:11.3f}{w['tie_rate']:7.3f}"
              if w else f"{'-':>12s}{'-':>11s}{'-':>7s}")
    print(f"{name:12s}{res['true'].mean():11.3f}{res['exact']:7.3f}{res['rm']:+10.3f}"
          f"{res['kl']:11.3f}{versus}")
print("\nsamples (prompt | " + " | ".join(results) + "; * = exact):")
for i in range(args.num_samples):
    row = [f"{answer_of(results[n]['texts'][i]):8s}{'*' if results[n]['true'][i] == 1 else ' '}"
           for n in results]
    print(f"  {eval_prompts[i]:10s}| " + " | ".join(row))

summary = {
    "rm_accuracy": round(rm_acc, 4),
    "ppo_win_rate": round(wins["PPO"]["win_rate"], 4),
    "ppo_win_rate_no_ties": round(wins["PPO"]["win_rate_no_ties"], 4),
    "dpo_win_rate": round(wins["DPO"]["win_rate"], 4),
    "dpo_win_rate_no_ties": round(wins["DPO"]["win_rate_no_ties"], 4),
    "sft_true_score": round(float(results["SFT"]["true"].mean()), 4),
    "ppo_true_score": round(float(results["PPO"]["true"].mean()), 4),
    "dpo_true_score": round(float(results["DPO"]["true"].mean()), 4),
    "sft_exact": round(results["SFT"]["exact"], 4),
    "sft_greedy_true_score": round(float(results["SFT greedy"]["true"].mean()), 4),
    "sft_greedy_exact": round(results["SFT greedy"]["exact"], 4),
    "ppo_exact": round(results["PPO"]["exact"], 4),
    "dpo_exact": round(results["DPO"]["exact"], 4),
    "ppo_kl": round(results["PPO"]["kl"], 4),
    "dpo_kl": round(results["DPO"]["kl"], 4),
    "ppo_rm_score": round(results["PPO"]["rm"], 4),
    "sft_rm_score": round(results["SFT"]["rm"], 4),
    "dpo_rm_score": round(results["DPO"]["rm"], 4),
    "dpo_pair_accuracy": round(dpo_acc, 4),
    "final_kl_coef": round(kl_ctl.value, 5),
    "demo_true_score": round(float(demo_score), 4),
    "stage_seconds": stage_seconds,
    "seconds": round(time.time() - t_start, 1),
    "seed": args.seed, "params": sft.num_parameters(), "device": args.device,
}
curves = {k: (tg.stack(v).numpy().tolist() if v and isinstance(v[0], tg.Tensor) else v)
          for k, v in curves.items()}  # one transfer per curve
save_curves(os.path.join(args.out_dir, "loss.png"), curves, xlabel="step of each stage",
            title="RLHF: the training loss of each stage")
write_summary(args.out_dir, summary)
