"""The PyTorch twin of tinygen.models.clip.CLIP with the conv image encoder (same names
and shapes, so tinygen's weights load into it), used by benchmarks/clip.py. The text
blocks are torch_gpt.Block, the GPT's block (causal, as in CLIP's text encoder)."""

import itertools

import torch
import torch.nn.functional as F
from torch import nn
from torch_gpt import Block


class TorchConvNet(nn.Module):
    def __init__(self, layers, width):
        super().__init__()
        c0 = max(width >> layers, 4)
        widths = [3 * c0] + [width >> (layers - k) for k in range(1, layers + 1)]
        self.stem = nn.Conv2d(1, c0, 3, padding=1)
        stages = [nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for c_in, c_out in itertools.pairwise(widths):
            stages += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out),
                       nn.ReLU()]
        self.stages = nn.Sequential(*stages)

    def forward(self, images):
        B, _, S, _ = images.shape
        x = self.stem(images.reshape(B * 3, 1, S, S))
        return self.stages(x.reshape(B, -1, S, S)).mean(dim=(2, 3))


class TorchTextTransformer(nn.Module):
    def __init__(self, vocab_size, context_length, layers, heads, width):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.zeros(context_length, width))
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)

    def forward(self, ids, eot):
        x = self.token_embedding(ids) + self.positional_embedding[:ids.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.ln_final(x)[torch.arange(len(ids)), eot]


def normalize(x):
    return x / ((x * x).sum(-1, keepdim=True) + 1e-12).sqrt()


class TorchCLIP(nn.Module):
    def __init__(self, c):
        """c: a tinygen.models.clip.CLIPConfig with vision="conv"."""
        super().__init__()
        self.visual = TorchConvNet(c.vision_layers, c.vision_width)
        self.text = TorchTextTransformer(c.vocab_size, c.context_length, c.text_layers,
                                         c.text_heads, c.text_width)
        self.visual_projection = nn.Linear(c.vision_width, c.embed_dim, bias=False)
        self.text_projection = nn.Linear(c.text_width, c.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.zeros(1))

    def forward(self, images, ids, eot):
        """The symmetric contrastive loss of a batch of matching pairs."""
        image_embeds = normalize(self.visual_projection(self.visual(images)))
        text_embeds = normalize(self.text_projection(self.text(ids, eot)))
        logits = self.logit_scale.exp() * (image_embeds @ text_embeds.T)
        labels = torch.arange(len(logits), device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
