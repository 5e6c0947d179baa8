"""Solution to tour exercise 14 (try it yourself first)."""


def straight_through(z_e, z_q):
    return z_e + (z_q - z_e).detach()   # value z_q, d/dz_e = identity
