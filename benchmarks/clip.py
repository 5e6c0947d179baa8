"""The training step of demos/clip.py in tinygen and PyTorch, side by side.

  clip    tinygen.models.clip.CLIP as the demo builds it (conv image encoder of 3 stages
          up to 64 channels, a one-layer text transformer of width 64, 64-d shared space):
          both encoders, the symmetric contrastive loss, backward, gradient clipping, AdamW
          (betas 0.9, 0.98), logit_scale clamped
tinygen runs the library's own model; PyTorch runs a twin with the same names and shapes
(torch_clip.TorchCLIP) loaded with the same weights, on the same batch of pairs with
distinct captions (train_clip keeps ~100 of each 128 drawn), so the first losses must
agree. Libraries alternate for a few rounds; prints the best median ms/iter of each and the
tinygen/PyTorch ratio.

    python benchmarks/clip.py [--batch 100] [--iters 15] [--rounds 3] [--device cpu]
    OPENBLAS_NUM_THREADS=1 python benchmarks/clip.py     # one thread, as the demo runs
"""

import argparse
import math

import numpy as np
from common import add_arguments, compare, copy_weights, torch

import tinygen as tg
from tinygen.data.shapes import CaptionTokenizer, make_shapes
from tinygen.models.clip import CLIP, CLIPConfig
from tinygen.optim import clip_grad_norm_


def workloads(lib, args, seed=0):
    """{"clip": step function} for `lib`; the weights are tinygen's (seeded), copied into the
    PyTorch twin so both start from the same point."""
    device = args.device
    tg.manual_seed(seed)
    data = make_shapes(4 * args.batch, seed=seed, split="train")
    keep = np.unique(data.captions, return_index=True)[1][:args.batch]   # distinct captions
    tokenizer = CaptionTokenizer()
    ids, eot = tokenizer.encode_batch([data.captions[i] for i in keep])
    model = CLIP(CLIPConfig(vocab_size=tokenizer.vocab_size, text_layers=1))
    if lib == "tinygen":
        model.to(device)
        opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.98), eps=1e-6)
        images = tg.tensor(data.images[keep], device=device)
        ids = tg.tensor(ids, device=device).data

        def step():
            loss = model(images, ids, eot)[2]
            opt.zero_grad()
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            model.clamp_logit_scale()
            return loss.item()
    else:
        from torch_clip import TorchCLIP

        twin = copy_weights(TorchCLIP(model.config), model).to(device)
        params = list(twin.parameters())
        opt = torch.optim.AdamW(
            [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
            lr=1e-3, betas=(0.9, 0.98), eps=1e-6)
        images, ids, eot = (torch.from_numpy(a).to(device)
                            for a in (data.images[keep], ids, eot))

        def step():
            loss = twin(images, ids, eot)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            with torch.no_grad():
                twin.logit_scale.clamp_(0.0, math.log(100))
            return loss.item()

    return {"clip": step}


def main():
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), 100)
    compare(workloads, ("clip",), parser.parse_args(),
            floor=[(1600, 128, 512), (64, 576, 6400)])  # text MLP rows; an image conv


if __name__ == "__main__":
    main()
