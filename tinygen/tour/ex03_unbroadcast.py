"""Tour exercise 3 (stop 3, broadcasting): the backward of broadcasting.

a [3, 1] + b [4] broadcasts to [3, 4]; the gradient that comes back is [3, 4], and each
input must get one of its own shape: sum over the axes that broadcasting added (leading
ones) or stretched (size 1 in the input). Return an array of exactly `shape`.
Check: python -m tinygen.tour check 3
"""


def unbroadcast(grad, shape):
    return grad  # tour exercise 3: right only when nothing was broadcast
