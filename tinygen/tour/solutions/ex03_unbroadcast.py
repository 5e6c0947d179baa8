"""Solution to tour exercise 3 (try it yourself first)."""


def unbroadcast(grad, shape):
    extra = grad.ndim - len(shape)                     # axes broadcasting put in front
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)
