"""GPT-2 124M shapes on the CPU: tinygen's GPT next to transformers' GPT2LMHeadModel.

One process, the same random weights (transformers initialises GPT-2, saves it with
save_pretrained, tinygen loads that folder with GPT.from_pretrained), the two libraries
alternating for a few rounds so machine noise hits both alike; medians and each run. Prints
  - loading: GPT.from_pretrained's seconds (copying, and with mmap=True), CPU seconds and
    peak extra memory (in a fresh subprocess each round, VmHWM - VmRSS before) against the
    file's size, and the first forward pass after it;
  - generation: ms/token, greedy, with the KV cache, after a 16-token prompt;
  - training: one step (forward, backward, AdamW) at B=1, T=1024;
  - the tokenizer: MB/s encoding tinyshakespeare and a mixed text (its lines among CJK,
    emoji, code, digits), empty cache and warm, tinygen vs tiktoken (same vocabulary,
    trained here by tinygen's BPE trainer: GPT-2's own files cannot be downloaded here);
and the tinygen/PyTorch ratio of each.

    PYTHONPATH=. python benchmarks/gpt2.py     # 124M: 12 layers, 12 heads, 768, vocab 50257
    PYTHONPATH=. python benchmarks/gpt2.py --n_layer 2 --rounds 1 --tokens 8   # a quick look
    PYTHONPATH=. python benchmarks/gpt2.py --no-train   # loading, generation, tokenizer
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from statistics import median

import numpy as np
from procmem import memory_kb

import tinygen as tg
from tinygen.models.gpt import GPT

SHAKESPEARE = "/work/shared/data/tinyshakespeare.txt"


def load_only(path, lib):
    """Child process: time one library's from_pretrained and measure its peak extra memory."""
    if lib == "torch":
        import transformers
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS (Linux)
        f.write("5")
    before = memory_kb("VmRSS")
    t0, cpu0 = time.perf_counter(), time.process_time()
    if lib == "torch":
        model = transformers.GPT2LMHeadModel.from_pretrained(path)
    else:
        model = GPT.from_pretrained(path, mmap=lib == "tinygen-mmap")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    extra_kb = memory_kb("VmHWM") - before
    t0 = time.perf_counter()  # the first forward pass: with mmap it reads the weights' pages
    if lib == "torch":
        import torch

        with torch.no_grad():
            model(torch.zeros((1, 1), dtype=torch.long))
    else:
        with tg.no_grad():
            model(np.zeros((1, 1), np.int64))
    print(json.dumps({"seconds": seconds, "cpu": cpu, "extra_kb": extra_kb,
                      "first": time.perf_counter() - t0}))


def timed_ms(step, warmup=1):
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    step()
    return 1000 * (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n_layer", type=int, default=12)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tokens", type=int, default=32, help="tokens generated per timing")
    p.add_argument("--T", type=int, default=1024, help="training sequence length")
    p.add_argument("--no-train", dest="train", action="store_false",
                   help="skip the training step (minutes each at T=1024 on a busy machine)")
    p.add_argument("--load-only", dest="load_only", nargs=2, metavar=("PATH", "LIB"))
    args = p.parse_args()
    if args.load_only:
        return load_only(*args.load_only)

    import torch
    import transformers

    threads = int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    print(f"load average {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores, {threads} threads; numpy {np.__version__}, torch "
          f"{torch.__version__}, transformers {transformers.__version__}; n_layer "
          f"{args.n_layer}, rounds {args.rounds}")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=args.n_layer, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0)
    ref = transformers.GPT2LMHeadModel(config)
    folder = tempfile.mkdtemp(prefix="gpt2-bench-")
    ref.save_pretrained(folder)
    size = os.path.getsize(os.path.join(folder, "model.safetensors"))

    loads = {"tinygen": [], "tinygen-mmap": [], "torch": []}
    for _ in range(args.rounds):  # a fresh process each time, the two alternating
        for lib, runs in loads.items():
            child = subprocess.run([sys.executable, __file__, "--load-only", folder, lib],
                                   capture_output=True, text=True, check=True,
                                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
    for lib, runs in loads.items():
        extra = median(r["extra_kb"] for r in runs)
        seconds = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        print(f"load {lib}: median {median(r['seconds'] for r in runs):.2f} s ({seconds}), CPU "
              f"time {median(r['cpu'] for r in runs):.2f} s, peak extra memory {extra / 1024:.0f} "
              f"MiB = {extra * 1024 / size:.2f}x the file ({size / 2**20:.0f} MiB, page cache); "
              f"then the first forward pass {median(r['first'] for r in runs):.2f} s")

    model = GPT.from_pretrained(folder)
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, config.vocab_size, (1, 16))
    x, y = (rng.integers(0, config.vocab_size, (1, args.T)) for _ in range(2))
    opt = model.configure_optimizers(0.0, 1e-4, (0.9, 0.95))
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)
    n = args.tokens

    def gen_tinygen():
        return model.generate(tg.tensor(prompt), n, temperature=0)

    def gen_torch():
        with torch.no_grad():
            return ref.generate(torch.tensor(prompt), max_new_tokens=n, min_new_tokens=n,
                                do_sample=False, use_cache=True, pad_token_id=0).numpy()

    def train_tinygen():
        _, loss = model(tg.tensor(x), tg.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    def train_torch():
        ref.train()
        logits = ref(torch.tensor(x)).logits
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]),
                                                 torch.tensor(y).view(-1))
        ref_opt.zero_grad()
        loss.backward()
        ref_opt.step()
        return loss.item()

    assert (np.asarray(gen_tinygen()) == gen_torch()).all(), "greedy generations differ"
    jobs = [("gen tinygen", gen_tinygen), ("gen torch", gen_torch)]
    if args.train:
        jobs += [("train tinygen", train_tinygen), ("train torch", train_torch)]
    times = {key: [] for key, _ in jobs}
    for _ in range(args.rounds):  # alternating, so machine noise hits both alike
        for key, fn in jobs:
            times[key].append(timed_ms(fn))
    show(f"generation ms/token (greedy, KV cache, {n} tokens after 16)",
         {lib: [t / n for t in times[f"gen {lib}"]] for lib in ("tinygen", "torch")})
    if args.train:
        show(f"training step ms (B=1, T={args.T}, AdamW)",
             {lib: times[f"train {lib}"] for lib in ("tinygen", "torch")})
    tokenizer_speed(args.rounds)


def show(what, runs):
    """One line: each library's median and its runs, and the ratio of the medians."""
    med = {lib: median(r) for lib, r in runs.items()}
    each = "; ".join(f"{lib} {med[lib]:.1f} ({', '.join(f'{t:.1f}' for t in r)})"
                     for lib, r in runs.items())
    print(f"{what}: {each}; ratio of medians {med['tinygen'] / med['torch']:.2f}")


def mixed_text(base, size=1_000_000, seed=0):
    """base's lines interleaved with lines of what GPT-2's pattern and byte-level BPE find
    hard: CJK, emoji with joiners, combining marks, digits, code, whitespace runs, CRLF."""
    rng = np.random.default_rng(seed)
    lines = base.splitlines(keepends=True)
    others = ["中文的句子，和日本語のテキスト。\n", "Emoji 😀👍🏽 👨‍👩‍👧 ❤️ 🇫🇷!\n",
              "cafe\u0301 nai\u0308ve résumé Ωμέγα Привет мир\n", "x = f(3.14, 1_000) + 42\r\n",
              "    def __init__(self):  # 2024-01-01\n", "\t\t  \n", "don't it's we'll THEY'RE\n",
              "नमस्ते مرحبا שלום 한국어 ٣٤ ½ Ⅻ\n", f"{rng.integers(0, 10**9)} {rng.random()}\n"]
    out, n = [], 0
    while n < size:
        line = lines[rng.integers(len(lines))] if rng.random() < 0.6 else \
            others[rng.integers(len(others))]
        out.append(line)
        n += len(line.encode())
    return "".join(out)


def tokenizer_speed(rounds):
    """MB/s encoding with an empty cache (a new tokenizer) and with a warm one (the same text
    again), wall-clock and CPU time (time.process_time: less of the other users' noise)."""
    import tiktoken

    from tinygen.data import BPETokenizer, GPT2Tokenizer, default_corpus
    from tinygen.data.gpt2_tokenizer import ENDOFTEXT, bytes_to_unicode

    if os.path.exists(SHAKESPEARE):
        with open(SHAKESPEARE, encoding="utf-8") as f:
            text = f.read()
    else:
        text = default_corpus(1_000_000)
    trained = BPETokenizer.train(text[:200_000], 256 + 1000)
    ours = GPT2Tokenizer.from_bpe(trained)
    char_byte = {c: b for b, c in bytes_to_unicode().items()}
    ranks = {bytes(char_byte[c] for c in t): i for t, i in ours.encoder.items() if t != ENDOFTEXT}
    tik = tiktoken.Encoding("bench", pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| """
                            r"""?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""", mergeable_ranks=ranks,
                            special_tokens={})
    for name, corpus in (("tinyshakespeare", text), ("mixed text", mixed_text(text))):
        mb = len(corpus.encode()) / 1e6
        speeds = {"cold": [], "warm": [], "cold CPU": [], "warm CPU": [], "tiktoken": [],
                  "tiktoken CPU": []}
        for _ in range(rounds):
            tok = GPT2Tokenizer.from_bpe(trained)  # an empty cache
            for kind in ("cold", "warm"):
                t0, cpu0 = time.perf_counter(), time.process_time()
                ids = tok.encode(corpus)
                speeds[kind].append(mb / (time.perf_counter() - t0))
                speeds[kind + " CPU"].append(mb / (time.process_time() - cpu0))
            t0, cpu0 = time.perf_counter(), time.process_time()
            assert tik.encode_ordinary(corpus) == ids
            speeds["tiktoken"].append(mb / (time.perf_counter() - t0))
            speeds["tiktoken CPU"].append(mb / (time.process_time() - cpu0))
        print(f"tokenizer MB/s on {name} ({mb:.1f} MB, vocab {ours.vocab_size}), medians: "
              + ", ".join(f"{kind} {median(v):.2f}" for kind, v in speeds.items())
              + " (cold: an empty cache; warm: the same text again)")


if __name__ == "__main__":
    main()
