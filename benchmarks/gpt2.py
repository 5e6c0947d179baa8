"""GPT-2 124M shapes on the CPU: tinygen's GPT next to transformers' GPT2LMHeadModel.

One process, the same random weights (transformers initialises GPT-2, saves it with
save_pretrained, tinygen loads that folder with GPT.from_pretrained), the two libraries
alternating for a few rounds so machine noise hits both alike. Prints
  - loading: GPT.from_pretrained's seconds and peak extra memory (in a fresh subprocess,
    VmHWM - VmRSS before) against the file's size;
  - generation: ms/token, greedy, with the KV cache, after a 16-token prompt;
  - training: one step (forward, backward, AdamW) at B=1, T=1024;
  - the tokenizer: MB/s encoding tinyshakespeare, tinygen vs tiktoken (same vocabulary,
    trained here by tinygen's BPE trainer: GPT-2's own files cannot be downloaded here);
and the tinygen/PyTorch ratio of each.

    PYTHONPATH=. python benchmarks/gpt2.py     # 124M: 12 layers, 12 heads, 768, vocab 50257
    PYTHONPATH=. python benchmarks/gpt2.py --n_layer 2 --rounds 1 --tokens 8   # a quick look
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import tinygen as tg
from tinygen.models.gpt import GPT

SHAKESPEARE = "/work/shared/data/tinyshakespeare.txt"


def memory_kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def load_only(path, lib):
    """Child process: time one library's from_pretrained and measure its peak extra memory."""
    if lib == "torch":
        import transformers
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS (Linux)
        f.write("5")
    before = memory_kb("VmRSS")
    t0 = time.perf_counter()
    if lib == "torch":
        transformers.GPT2LMHeadModel.from_pretrained(path)
    else:
        GPT.from_pretrained(path)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "extra_kb": memory_kb("VmHWM") - before}))


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
    p.add_argument("--load-only", dest="load_only", nargs=2, metavar=("PATH", "LIB"))
    args = p.parse_args()
    if args.load_only:
        return load_only(*args.load_only)

    import torch
    import transformers

    threads = int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    print(f"{os.cpu_count()} cores, {threads} threads; numpy {np.__version__}, torch "
          f"{torch.__version__}, transformers {transformers.__version__}; n_layer "
          f"{args.n_layer}, rounds {args.rounds}")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=args.n_layer, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0)
    ref = transformers.GPT2LMHeadModel(config)
    folder = tempfile.mkdtemp(prefix="gpt2-bench-")
    ref.save_pretrained(folder)
    size = os.path.getsize(os.path.join(folder, "model.safetensors"))

    for lib in ("tinygen", "torch"):
        child = subprocess.run([sys.executable, __file__, "--load-only", folder, lib],
                               capture_output=True, text=True, check=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        load = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"load {lib}: {load['seconds']:.2f} s, peak extra memory "
              f"{load['extra_kb'] / 1024:.0f} MiB = {load['extra_kb'] * 1024 / size:.2f}x the "
              f"file ({size / 2**20:.0f} MiB, in the page cache)")

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
    best = {}
    for _ in range(args.rounds):
        for key, fn in (("gen tinygen", gen_tinygen), ("gen torch", gen_torch),
                        ("train tinygen", train_tinygen), ("train torch", train_torch)):
            best[key] = min(best.get(key, float("inf")), timed_ms(fn))
    gen = {lib: best[f"gen {lib}"] / n for lib in ("tinygen", "torch")}
    train = {lib: best[f"train {lib}"] for lib in ("tinygen", "torch")}
    print(f"generation ms/token (greedy, KV cache, {n} tokens after 16): tinygen "
          f"{gen['tinygen']:.1f}, torch {gen['torch']:.1f}, ratio "
          f"{gen['tinygen'] / gen['torch']:.2f}")
    print(f"training step ms (B=1, T={args.T}, AdamW): tinygen {train['tinygen']:.0f}, torch "
          f"{train['torch']:.0f}, ratio {train['tinygen'] / train['torch']:.2f}")
    tokenizer_speed()


def tokenizer_speed():
    import tiktoken

    from tinygen.data import BPETokenizer, GPT2Tokenizer, default_corpus
    from tinygen.data.gpt2_tokenizer import ENDOFTEXT, bytes_to_unicode

    if os.path.exists(SHAKESPEARE):
        with open(SHAKESPEARE, encoding="utf-8") as f:
            text = f.read()
    else:
        text = default_corpus(1_000_000)
    ours = GPT2Tokenizer.from_bpe(BPETokenizer.train(text[:200_000], 256 + 1000))
    char_byte = {c: b for b, c in bytes_to_unicode().items()}
    ranks = {bytes(char_byte[c] for c in t): i for t, i in ours.encoder.items() if t != ENDOFTEXT}
    tik = tiktoken.Encoding("bench", pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| """
                            r"""?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""", mergeable_ranks=ranks,
                            special_tokens={})
    mb = len(text.encode()) / 1e6
    t0 = time.perf_counter()
    ids = ours.encode(text)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours.encode(text)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert tik.encode_ordinary(text) == ids
    tik_s = time.perf_counter() - t0
    print(f"tokenizer on tinyshakespeare ({mb:.1f} MB, vocab {ours.vocab_size}): tinygen "
          f"{mb / cold:.1f} MB/s (empty cache), {mb / warm:.1f} MB/s (warm); tiktoken "
          f"{mb / tik_s:.1f} MB/s")


if __name__ == "__main__":
    main()
