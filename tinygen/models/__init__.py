"""Reference models, each a file to read: gpt (GPT, nanoGPT's names), sampling (logits
processors and the sampler of GPT.generate), vae (MLP and conv VAEs), gan (DCGAN),
classifier (the judge of generated images), clip (CLIP), vqvae (the VQ-VAE image tokenizer)
and dalle (a DALL·E-style prior over text then image tokens)."""
