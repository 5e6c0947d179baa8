"""The two training steps of demos/dalle.py in tinygen and PyTorch, side by side.

  vqvae   stage 1: the VQ-VAE tokenizer (tinygen.models.dalle.VQVAE, its default config:
          32x32 RGB -> 8x8 codes of 128): encoder, nearest code, straight-through,
          decoder; pixel MSE + codebook + commitment losses; Adam
  prior   stage 2: the GPT over 10 caption + 64 image tokens (DALLE, 4 layers x 128, the
          demo's size), loss on image tokens only; AdamW, gradient clipping
tinygen runs the library's own models; PyTorch runs twins with the same names and shapes
(torch_dalle.TorchVQVAE, torch_gpt.TorchGPT) loaded with the same weights, on the same
batch, so the first losses must agree. Libraries alternate for a few rounds; prints the
best median ms/iter of each and the tinygen/PyTorch ratio.

    python benchmarks/dalle.py [--batch 64] [--iters 15] [--rounds 3] [--device cpu]
    OPENBLAS_NUM_THREADS=1 python benchmarks/dalle.py    # one thread, as the demo runs
"""

import argparse

import numpy as np
from common import add_arguments, compare, copy_weights, torch

import tinygen as tg
from tinygen import optim
from tinygen.data.shapes import CaptionTokenizer, make_shapes
from tinygen.models.dalle import DALLE, VQVAE, DALLEConfig, VQVAEConfig


def workloads(lib, args, seed=0):
    """name -> step function for `lib`; the weights are tinygen's (seeded), copied into the
    PyTorch twins so both start from the same point."""
    device = args.device
    tg.manual_seed(seed)
    data = make_shapes(args.batch, seed=seed, split="train")
    tokenizer = CaptionTokenizer()
    text, _ = tokenizer.encode_batch(data.captions)                    # [B, 10]
    vqvae = VQVAE(VQVAEConfig())
    with tg.no_grad():  # the demo's k-means start, so the codes in use are realistic
        z_e = vqvae.encode(data.images)
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, vqvae.config.code_dim)  # [B*h*w, D]
        vqvae.quantizer.init_from(flat.data, seed=seed)
    config = DALLEConfig(text_vocab=tokenizer.vocab_size, text_len=text.shape[1])
    prior = DALLE(config)
    image_tokens = np.random.default_rng(seed).integers(0, config.n_codes,
                                                        (args.batch, config.image_tokens))
    if lib == "tinygen":
        vqvae.to(device)
        prior.to(device)
        images = tg.tensor(data.images, device=device)
        vq_opt = optim.Adam(vqvae.parameters(), lr=1e-3)
        prior_opt = prior.gpt.configure_optimizers(0.1, 1e-3, (0.9, 0.95))
        image_tokens = tg.tensor(image_tokens, device=device).data
        prior_params, clip_grad_norm_ = prior.parameters(), optim.clip_grad_norm_

        def vq_loss():
            return vqvae(images)[2]

        def prior_loss():
            return prior(text, image_tokens)
    else:
        from torch_dalle import TorchVQVAE
        from torch_gpt import TorchGPT

        c = vqvae.config
        torch_vq = copy_weights(TorchVQVAE(c.in_channels, c.hidden, c.n_codes, c.code_dim,
                                           c.beta), vqvae).to(device)
        torch_prior = copy_weights(TorchGPT(config.text_vocab + config.n_codes, config.n_layer,
                                            config.n_head, config.n_embd,
                                            config.text_len + config.image_tokens),
                                   prior.gpt).to(device)
        images = torch.from_numpy(data.images).to(device)
        vq_opt = torch.optim.Adam(torch_vq.parameters(), lr=1e-3)
        prior_params = list(torch_prior.parameters())
        prior_opt = torch.optim.AdamW(
            [{"params": [p for p in prior_params if p.dim() >= 2], "weight_decay": 0.1},
             {"params": [p for p in prior_params if p.dim() < 2], "weight_decay": 0.0}],
            lr=1e-3, betas=(0.9, 0.95))
        tokens = prior.layout(text, image_tokens).numpy()              # [B, 74]
        targets = tokens[:, 1:].copy()
        targets[:, :config.text_len - 1] = -1                          # as DALLE.forward
        inputs, targets = (torch.from_numpy(a).to(device) for a in (tokens[:, :-1], targets))
        clip_grad_norm_ = torch.nn.utils.clip_grad_norm_

        def vq_loss():
            return torch_vq(images)

        def prior_loss():
            return torch_prior(inputs, targets)[1]

    def vq_step():
        loss = vq_loss()
        vq_opt.zero_grad()
        loss.backward()
        vq_opt.step()
        return loss.item()

    def prior_step():
        loss = prior_loss()
        prior_opt.zero_grad()
        loss.backward()
        clip_grad_norm_(prior_params, 1.0)
        prior_opt.step()
        return loss.item()

    return {"vqvae": vq_step, "prior": prior_step}


def main():
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), 64)
    compare(workloads, ("vqvae", "prior"), parser.parse_args(),
            floor=[(64, 1152, 4096), (4736, 128, 512)])  # a VQ-VAE conv; the prior's MLP rows


if __name__ == "__main__":
    main()
