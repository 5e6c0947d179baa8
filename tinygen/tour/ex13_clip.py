"""Tour exercise 13 (stop 13, CLIP): the symmetric contrastive loss.

CLIP (Radford et al. 2021), Figure 3: for unit-length image and text embeddings [B, D],
logits = exp(logit_scale) · image @ textᵀ [B, B]; image i's caption is text i, so the
labels are 0..B-1, and the loss is the mean of the cross-entropy over rows (image ->
text) and over columns (text -> image). This stub has only the rows.
Check: python -m tinygen.tour check 13
"""

import numpy as np

from tinygen.nn import functional as F


def clip_loss(image_embeds, text_embeds, logit_scale):
    logits = logit_scale.exp() * (image_embeds @ text_embeds.T)        # [B, B]
    labels = np.arange(logits.shape[0])
    return F.cross_entropy(logits, labels)   # tour exercise 13: and text -> image
