"""Tour exercise 9 (stop 9, VAE): the reparameterisation trick.

Kingma & Welling 2014, sec. 2.4: a sample z ~ N(mu, σ²) with σ = exp(logvar / 2) written
as z = mu + σ · eps, eps ~ N(0, I), so that z is a differentiable function of mu and
logvar and the noise eps is a constant input. mu, logvar Tensors [B, Z], eps an array.
Check: python -m tinygen.tour check 9
"""


def reparameterize(mu, logvar, eps):
    raise NotImplementedError("tour exercise 9: z = mu + exp(logvar / 2) * eps")
