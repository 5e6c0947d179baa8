"""Solution to tour exercise 9 (try it yourself first)."""


def reparameterize(mu, logvar, eps):
    return mu + (logvar * 0.5).exp() * eps
