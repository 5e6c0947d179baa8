"""Code synthesis, top to bottom: a small GPT (its tokens: pieces of the task's code, see
ProgramTokenizer) writes programs from a description and two examples, is judged by running
them on hidden tests in a sandbox (pass@k, Codex: Chen et al. 2021), is improved by RL from execution feedback (GRPO, DeepSeekMath: Shao et al. 2024),
and is asked to fix programs with one injected bug.

    0. the task (tinygen/data/programs.py): pipelines of 1-4 primitives over lists of
       integers; evaluation uses only compositions (structural keys) never trained on
    1. SFT: one GPT trained on (spec -> program) and (buggy program + failing test -> program)
    2. pass@1 and pass@10 of SFT on held-out specs: n samples at temperature 0.2 (pass@1)
       and n at 0.8 (pass@10), the unbiased estimator (tinygen/rl/pass_at_k.py), judged by
       tinygen/rl/sandbox.py
    3. GRPO (tinygen/rl/grpo.py) on training specs: G programs per spec, reward = fraction of
       hidden tests passed, group-normalised advantages, clipped ratio, KL to the SFT model;
       only groups with mixed rewards are kept (the others have zero advantage)
    4. pass@1 and pass@10 after GRPO on the same held-out specs, the KL to the reference
    5. repair: the fix rate on held-out programs with one injected bug (greedy decoding)

    python demos/code.py                        # ~13 min measured on a shared 2-core box
    python demos/code.py --seed 2 --out_dir out/code_2
    python demos/code.py --smoke                # a few seconds, to check that it all runs
    python demos/code.py --grpo_prompts unseen --eval_every 20   # GRPO on compositions SFT
                                                # never saw, held-out pass@k as it trains

KL (grpo_kl) is the sum over a program of log π - log π_ref, averaged over the GRPO policy's
samples on the held-out specs: the sampled estimate of KL(π ‖ π_ref) in nats per program.
It ends with one JSON line, also written to <out_dir>/summary.json.
"""

import dataclasses
import json
import os
import time
from dataclasses import dataclass

# The matrices here are small; OpenBLAS's threads cost more than they save on a shared
# machine (see demos/ppo_cartpole.py). Must be set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

import tinygen as tg
from tinygen.cli import parse_config
from tinygen.data.programs import EOS, PAD, ProgramTask, tokenizer
from tinygen.models.gpt import GPT, GPTConfig
from tinygen.optim import clip_grad_norm_
from tinygen.rl.grpo import GRPOConfig, group_advantages, grpo_update, sample_until_eos
from tinygen.rl.pass_at_k import mean_pass_at_k
from tinygen.rl.reward_model import copy_gpt
from tinygen.rl.rlhf import response_logprobs, sft_targets
from tinygen.rl.sandbox import run_tests


@dataclass
class Args:
    seed: int = 1
    out_dir: str = "out/code"
    device: str = "cpu"
    smoke: bool = False             # a tiny run of a few seconds
    # the task
    train_specs: int = 3000         # training specs (keys not held out)
    eval_specs: int = 100           # held-out specs for pass@k
    repair_specs: int = 100         # held-out programs with one injected bug
    holdout_mod: int = 5            # 1/holdout_mod of the compositions are held out
    # the model: a GPT over ProgramTokenizer's pieces (a program is about 8 tokens)
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 96
    # 1. supervised fine-tuning
    sft_iters: int = 800
    sft_batch_size: int = 64
    sft_lr: float = 3e-3
    repair_frac: float = 0.25       # fraction of SFT batches that are repair examples
    # 2, 4. evaluation
    num_samples: int = 10           # n: samples per held-out spec and temperature (n >= k)
    pass1_temperature: float = 0.2  # of the samples for pass@1 (Codex: 0.2 is best for k=1)
    temperature: float = 0.8        # of the samples for pass@10 (Codex: 0.8 for large k)
    # 3. GRPO (tinygen.rl.grpo.GRPOConfig; grpo_update reads these fields)
    grpo_iters: int = 20
    prompts_per_iter: int = 16      # groups per update; B = prompts_per_iter * group_size
    oversample: int = 3             # specs sampled per kept group (only mixed groups are kept)
    rollout_temperature: float = 1.0   # GRPO samples the policy itself
    grpo_prompts: str = "train"     # "train": SFT's specs; "unseen": fresh specs of training-side
                                    # compositions SFT never saw (docs/code_synthesis.md)
    eval_every: int = 0             # held-out pass@k every this many rollouts (0: at the end)
    group_size: int = 8
    learning_rate: float = 3e-5      # 3e-4 (above the end of SFT's schedule) undid SFT
    clip_coef: float = 0.2
    beta: float = 0.04
    update_epochs: int = 2
    num_minibatches: int = 2
    max_grad_norm: float = 1.0
    # samples
    num_shown: int = 4              # held-out specs printed with their programs


# --smoke: defaults for a run of seconds (a flag given explicitly still wins)
SMOKE = {"train_specs": 64, "eval_specs": 4, "repair_specs": 4, "n_layer": 1, "n_embd": 32,
         "sft_iters": 4, "sft_batch_size": 8, "num_samples": 10, "grpo_iters": 1,
         "prompts_per_iter": 2, "group_size": 4, "num_shown": 1}


def parse_args():
    args = parse_config(Args, __doc__, smoke=SMOKE)
    for name in ("train_specs", "eval_specs", "repair_specs", "sft_iters", "num_samples",
                 "group_size", "prompts_per_iter", "holdout_mod", "oversample"):
        if getattr(args, name) < 1:
            raise SystemExit(f"demos/code.py: --{name} must be at least 1")
    if args.num_samples < 10:
        raise SystemExit("demos/code.py: --num_samples must be at least 10 for pass@10")
    if args.grpo_prompts not in ("train", "unseen"):
        raise SystemExit(f"demos/code.py: --grpo_prompts must be train or unseen, got "
                         f"{args.grpo_prompts!r}")
    if args.group_size < 2:
        raise SystemExit("demos/code.py: --group_size must be at least 2 (GRPO compares a group)")
    return args


args = parse_args()
os.makedirs(args.out_dir, exist_ok=True)
tg.manual_seed(args.seed)                  # weights, sampling, minibatch order
rng = np.random.default_rng(args.seed)     # the task's programs and tests
t_start = time.time()
stage_seconds = {}


def log_stage(name, t0):
    stage_seconds[name] = round(time.time() - t0, 1)
    print(f"[{name}: {stage_seconds[name]:.1f}s]")


# ---- 0. the task ----------------------------------------------------------------------------
t0 = time.time()
task = ProgramTask(holdout_mod=args.holdout_mod)
tok = tokenizer()
eos_id, pad_id = tok.encode(EOS)[0], tok.encode(PAD)[0]
train = [task.sample(rng) for _ in range(args.train_specs)]
held_out = [task.sample(rng, held_out=True) for _ in range(args.eval_specs)]
repair_pool = [task.sample(rng, held_out=True) for _ in range(args.repair_specs)]


def bugs_of(specs):
    """(repair prompt, correct program, spec) for the specs that have a bug (nearly all)."""
    out = []
    for spec in specs:
        bug = task.inject_bug(spec, rng)
        if bug is not None:
            out.append((task.repair_prompt(*bug), spec.program, spec))
    return out


train_repairs, eval_repairs = bugs_of(train), bugs_of(repair_pool)
# lengths in tokens: prompts are left-padded to the longest, so a batch of them ends together;
# R, the most tokens a program may have (EOS included), leaves room over the longest reference
Ps = max(len(tok.encode(task.prompt(s))) for s in train + held_out)
Pr = max(len(tok.encode(p)) for p, _, _ in train_repairs + eval_repairs)
R = max(len(tok.encode(s.program + EOS)) for s in train) + 8
train_keys = {s.key for s in train}
assert not train_keys & {s.key for s in held_out + repair_pool}, "a held-out key was trained on"
print(f"task: {len(train)} training specs ({len(train_keys)} compositions), {len(held_out)} "
      f"held-out specs, {len(eval_repairs)} held-out buggy programs; e.g.\n"
      + task.prompt(train[0]) + train[0].program)
log_stage("data", t0)


def encode_prompts(prompts, P):
    """Prompts -> ids [B, P], left-padded with PAD to P tokens."""
    ids = [tok.encode(p) for p in prompts]
    return np.array([[pad_id] * (P - len(row)) + row for row in ids], dtype=np.int64)


def decode_programs(tokens, P):
    return [tok.decode(row[P:]).split(EOS)[0] for row in tg.as_tensor(tokens).numpy()]


# ---- 1. supervised fine-tuning: spec -> program and bug -> fix, in one model -----------------
t0 = time.time()


def sft_set(prompts, programs, P):
    """ids [B, P + R] of prompt + program + EOS (padded), the mask [B, R] of the program's
    tokens, and the targets: the loss is on the program only."""
    responses = [tok.encode(p + EOS) for p in programs]
    tokens = np.full((len(prompts), P + R), pad_id, dtype=np.int64)
    tokens[:, :P] = encode_prompts(prompts, P)
    mask = np.zeros((len(prompts), R), dtype=np.float32)
    for i, ids in enumerate(responses):
        tokens[i, P:P + len(ids)], mask[i, :len(ids)] = ids, 1.0
    return tokens, mask, sft_targets(tokens, mask, P).numpy()


synth_set = sft_set([task.prompt(s) for s in train], [s.program for s in train], Ps)
repair_set = sft_set([p for p, _, _ in train_repairs], [q for _, q, _ in train_repairs], Pr)
config = GPTConfig(block_size=max(Ps, Pr) + R, vocab_size=tok.vocab_size, n_layer=args.n_layer,
                   n_head=args.n_head, n_embd=args.n_embd)
sft = GPT(config)
sft.to(args.device)
optimizer = sft.configure_optimizers(0.0, args.sft_lr, (0.9, 0.99))
print(f"\n1. SFT: GPT of {sft.num_parameters():,} parameters on {len(train)} programs and "
      f"{len(train_repairs)} repairs")
for it in range(args.sft_iters + 1):
    tokens, mask, targets = repair_set if rng.random() < args.repair_frac else synth_set
    ix = rng.integers(len(tokens), size=args.sft_batch_size)
    T = tokens.shape[1] - R + int(mask[ix].sum(axis=1).max())   # trim the shared padding
    lr = args.sft_lr * min(1.0, 0.5 * (1 + np.cos(np.pi * it / args.sft_iters)) + 0.05)
    for group in optimizer.param_groups:
        group["lr"] = lr
    _, loss = sft(tg.tensor(tokens[ix, :T - 1], device=args.device),
                  tg.tensor(targets[ix, :T - 1], device=args.device))
    optimizer.zero_grad()
    loss.backward()
    clip_grad_norm_(sft.parameters(), 1.0)
    optimizer.step()
    if it % max(args.sft_iters // 10, 1) == 0:
        print(f"sft iter {it:5d}: loss {loss.item():.4f}  ({time.time() - t0:.0f}s)")
log_stage("sft", t0)


# ---- 2. pass@k on held-out specs --------------------------------------------------------------
def sample_specs(model, specs, temperature, ref=None):
    """n programs per spec at a temperature: the number that pass each spec [S], the programs
    with their verdicts, and (with ref) each sample's summed log π - log π_ref."""
    n = args.num_samples
    prompt_ids = np.repeat(encode_prompts([task.prompt(s) for s in specs], Ps), n, axis=0)
    correct, programs, log_ratios = np.zeros(len(specs), np.int64), [], []
    for start in range(0, len(prompt_ids), 500):
        tokens, mask = sample_until_eos(model, prompt_ids[start:start + 500], R, eos_id,
                                        temperature)
        for row, program in enumerate(decode_programs(tokens, Ps)):
            i = (start + row) // n
            ok = all(run_tests(program, specs[i].tests))
            correct[i] += ok
            programs.append((program, ok))
        if ref is not None:
            with tg.no_grad():
                lp = response_logprobs(model, tg.tensor(tokens), Ps).numpy()
                ref_lp = response_logprobs(ref, tg.tensor(tokens), Ps).numpy()
            log_ratios.extend(((lp - ref_lp) * mask.numpy()).sum(axis=1).tolist())
    return correct, programs, log_ratios


def evaluate(model, specs, ref=None):
    """pass@1 from n samples at the low temperature and pass@10 from n at the higher one
    (Chen et al. 2021, fig. 5: the best temperature grows with k), both with the unbiased
    estimator; with ref, the mean KL(π ‖ π_ref) per program, from n samples of π itself
    (temperature 1) and their summed log-ratios."""
    n = [args.num_samples] * len(specs)
    low, programs, _ = sample_specs(model, specs, args.pass1_temperature)
    high, _, _ = sample_specs(model, specs, args.temperature)
    result = {"pass_at_1": mean_pass_at_k(n, low, 1), "pass_at_10": mean_pass_at_k(n, high, 10),
              "pass_at_1_high_t": mean_pass_at_k(n, high, 1), "programs": programs[::n[0]]}
    if ref is not None:
        result["kl"] = float(np.mean(sample_specs(model, specs, 1.0, ref)[2]))
    return result


def repair_rate(model):
    """Greedy fixes of the held-out buggy programs; a fix counts when it passes every test."""
    prompt_ids = encode_prompts([p for p, _, _ in eval_repairs], Pr)
    tokens, _ = sample_until_eos(model, prompt_ids, R, eos_id, temperature=0)
    fixed = [all(run_tests(prog, spec.tests)) for prog, (_, _, spec)
             in zip(decode_programs(tokens, Pr), eval_repairs)]
    return float(np.mean(fixed)) if fixed else float("nan")


t0 = time.time()
before = evaluate(sft, held_out)
sft_repair = repair_rate(sft)
print(f"\n2. SFT on {len(held_out)} held-out specs: pass@1 {before['pass_at_1']:.3f}, "
      f"pass@10 {before['pass_at_10']:.3f}; repair fix rate {sft_repair:.3f}")
log_stage("eval_sft", t0)

# ---- 3. GRPO from execution feedback ----------------------------------------------------------
t0 = time.time()
grpo_cfg = GRPOConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(GRPOConfig)
                         if hasattr(args, f.name) and f.name != "temperature"},
                      temperature=args.rollout_temperature)
policy, ref = copy_gpt(sft), copy_gpt(sft)
ref.eval()
optimizer = policy.configure_optimizers(0.0, args.learning_rate, (0.9, 0.99))
print(f"\n3. GRPO: {args.grpo_iters} rollouts of {args.oversample}x{args.prompts_per_iter} "
      f"training specs x {args.group_size} programs, keeping up to {args.prompts_per_iter} "
      "groups with mixed rewards")


def grpo_specs(n):
    """n prompts for a rollout: SFT's own specs, or fresh specs whose composition is on the
    training side of the split but not among SFT's (a held-out key is never drawn)."""
    if args.grpo_prompts == "train":
        return [train[i] for i in rng.integers(len(train), size=n)]
    specs = []
    while len(specs) < n:
        spec = task.sample(rng)
        if spec.key not in train_keys:
            specs.append(spec)
    return specs


history = []
for it in range(1, args.grpo_iters + 1):
    N, G = args.prompts_per_iter * args.oversample, args.group_size
    specs = grpo_specs(N)
    tokens, mask = sample_until_eos(
        policy, np.repeat(encode_prompts([task.prompt(s) for s in specs], Ps), G, axis=0),
        R, eos_id, args.rollout_temperature)
    passed = [run_tests(prog, specs[i // G].tests)
              for i, prog in enumerate(decode_programs(tokens, Ps))]
    rewards = np.array([np.mean(p) for p in passed]).reshape(N, G)
    # dynamic sampling (DAPO, Yu et al. 2025): a group whose programs all score alike has zero
    # advantage and teaches nothing; update on the groups with mixed rewards only
    mixed = np.nonzero(rewards.std(axis=1) > 0)[0][:args.prompts_per_iter]
    logs = {"kl": float("nan"), "clipfrac": float("nan")}
    if len(mixed):
        rows = (mixed[:, None] * G + np.arange(G)).reshape(-1)
        advantages = group_advantages(rewards[mixed]).reshape(-1)
        logs = grpo_update(policy, ref, optimizer, tokens[rows], mask[rows], advantages,
                           grpo_cfg)
    logs.update(iter=it, reward=float(rewards.mean()), mixed_groups=len(mixed),
                pass_at_1=float(np.mean([all(p) for p in passed])))
    if args.eval_every and it % args.eval_every == 0 and it < args.grpo_iters:
        mid = evaluate(policy, held_out)
        logs.update(held_out_pass_at_1=mid["pass_at_1"], held_out_pass_at_10=mid["pass_at_10"])
        print(f"   held-out after {it} rollouts: pass@1 {mid['pass_at_1']:.3f}  pass@10 "
              f"{mid['pass_at_10']:.3f}")
    history.append(logs)
    if it % max(args.grpo_iters // 10, 1) == 0 or it == 1:
        print(f"grpo iter {it:4d}: reward {logs['reward']:.3f}  pass@1 {logs['pass_at_1']:.3f}"
              f"  mixed groups {len(mixed):3d}/{N}  kl {logs['kl']:.4f}  clipfrac "
              f"{logs['clipfrac']:.3f}  ({time.time() - t0:.0f}s)")
log_stage("grpo", t0)

# ---- 4-5. after GRPO: pass@k, KL, repair -----------------------------------------------------
t0 = time.time()
after = evaluate(policy, held_out, ref=ref)
grpo_repair = repair_rate(policy)
log_stage("eval_grpo", t0)

print(f"\n4. held-out specs ({len(held_out)}; pass@1 from {args.num_samples} samples at "
      f"temperature {args.pass1_temperature}, pass@10 from {args.num_samples} at "
      f"{args.temperature}):")
print(f"{'':10s} {'pass@1':>8s} {'pass@10':>8s} {'repair':>8s} {'KL(π‖ref)':>10s}")
print(f"{'SFT':10s} {before['pass_at_1']:8.3f} {before['pass_at_10']:8.3f} {sft_repair:8.3f} "
      f"{0.0:10.3f}")
print(f"{'GRPO':10s} {after['pass_at_1']:8.3f} {after['pass_at_10']:8.3f} {grpo_repair:8.3f} "
      f"{after['kl']:10.3f}")
for spec, (p_sft, ok_sft), (p_grpo, ok_grpo) in list(zip(
        held_out, before["programs"], after["programs"]))[:args.num_shown]:
    print("\n" + task.prompt(spec).rstrip())
    print(f"-- SFT ({'pass' if ok_sft else 'FAIL'}):\n{p_sft}")
    print(f"-- GRPO ({'pass' if ok_grpo else 'FAIL'}):\n{p_grpo}")

summary = {
    "seed": args.seed,
    "sft_pass_at_1": round(before["pass_at_1"], 4),
    "sft_pass_at_10": round(before["pass_at_10"], 4),
    "grpo_pass_at_1": round(after["pass_at_1"], 4),
    "grpo_pass_at_10": round(after["pass_at_10"], 4),
    "grpo_kl": round(after["kl"], 4),
    "sft_pass_at_1_high_t": round(before["pass_at_1_high_t"], 4),   # at args.temperature
    "grpo_pass_at_1_high_t": round(after["pass_at_1_high_t"], 4),
    "repair_fix_rate": round(sft_repair, 4),          # the SFT model, which trained on it
    "grpo_repair_fix_rate": round(grpo_repair, 4),    # after GRPO (which trains synthesis only)
    "held_out_specs": len(held_out),
    "repair_programs": len(eval_repairs),
    "seconds": round(time.time() - t_start, 1),
    "stage_seconds": stage_seconds,
    "config": dataclasses.asdict(args),
}
with open(os.path.join(args.out_dir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
with open(os.path.join(args.out_dir, "grpo_log.json"), "w") as f:
    json.dump(history, f)
print(json.dumps({k: v for k, v in summary.items() if k != "config"}))
