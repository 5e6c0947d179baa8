"""Tour exercise 6 (stop 6, optimizers): one Adam step, in place on arrays.

Kingma & Ba 2015, Algorithm 1, with t counted from 1:
    m = β1 m + (1 - β1) g          v = β2 v + (1 - β2) g²
    x -= lr · m̂ / (√v̂ + eps)       m̂ = m / (1 - β1^t),  v̂ = v / (1 - β2^t)
Update x, m and v IN PLACE (x -= ..., m *= ...): the optimizer hands you views into its
flat buffer, so a new array would be lost. Check: python -m tinygen.tour check 6
"""


def adam_update(x, g, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    x -= lr * g  # tour exercise 6: this is SGD; make it Adam
