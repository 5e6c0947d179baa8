"""Reference models: GPT (more to come: VAE, GAN, CLIP, DALL-E-style)."""
