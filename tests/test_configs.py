"""Every config dataclass of tinygen.models and tinygen.rl checks itself when made: a bad
value raises ValueError("<field>=<value>: <what is allowed>") before any work starts."""

import re

import pytest

from tinygen.models.clip import CLIPConfig
from tinygen.models.dalle import DALLEConfig
from tinygen.models.gpt import GPTConfig
from tinygen.models.vae import VAEConfig
from tinygen.models.vqvae import VQVAEConfig
from tinygen.rl.ppo import PPOConfig
from tinygen.rl.rlhf import RLHFConfig
from tinygen.rl.task import SortTask

CASES = [
    (GPTConfig, {"n_layer": 0}, "n_layer=0: must be > 0"),
    (GPTConfig, {"n_head": 5}, "n_embd=384: must be divisible by n_head=5"),
    (GPTConfig, {"dropout": -0.1}, "dropout=-0.1: must be in [0, 1)"),
    (GPTConfig, {"vocab_size": 0}, "vocab_size=0: must be > 0"),
    (VAEConfig, {"model": "gan"}, "model='gan': must be one of 'mlp', 'conv'"),
    (VAEConfig, {"n_latent": 0}, "n_latent=0: must be > 0"),
    (VAEConfig, {"model": "conv", "image_size": 30}, "image_size=30: must be a multiple of 4"),
    (VQVAEConfig, {"n_codes": 0}, "n_codes=0: must be > 0"),
    (VQVAEConfig, {"image_size": 30}, "image_size=30: must be a multiple of 4"),
    (VQVAEConfig, {"beta": -1.0}, "beta=-1.0: must be >= 0"),
    (DALLEConfig, {"n_head": 3}, "n_embd=128: must be divisible by n_head=3"),
    (DALLEConfig, {"image_tokens": 0}, "image_tokens=0: must be > 0"),
    (CLIPConfig, {"vision": "resnet"}, "vision='resnet': must be one of 'conv', 'vit'"),
    (CLIPConfig, {"text_heads": 3}, "text_width=64: must be divisible by text_heads=3"),
    (CLIPConfig, {"vision": "vit", "patch_size": 5},
     "image_size=32: must be divisible by patch_size=5"),
    (CLIPConfig, {"dropout": 1.5}, "dropout=1.5: must be in [0, 1)"),
    (PPOConfig, {"num_minibatches": 0}, "num_minibatches=0: must be > 0"),
    (PPOConfig, {"clip_coef": -0.2}, "clip_coef=-0.2: must be >= 0"),
    (PPOConfig, {"max_grad_norm": 0.0}, "max_grad_norm=0.0: must be > 0"),
    (RLHFConfig, {"learning_rate": -1.0}, "learning_rate=-1.0: must be >= 0"),
    (RLHFConfig, {"gae_lambda": 1.5}, "gae_lambda=1.5: must be in [0, 1]"),
    (RLHFConfig, {"update_epochs": 0}, "update_epochs=0: must be > 0"),
    (RLHFConfig, {"kl_target": 0.0}, "kl_target=0.0: must be > 0"),
    (SortTask, {"max_len": 9}, "max_len=9: must be in [min_len=3, len(letters)=8]"),
    (SortTask, {"p_lazy": 1.5}, "p_lazy=1.5: must be in [0, 1]"),
]


@pytest.mark.parametrize("config_cls, changes, message", CASES,
                         ids=[f"{c.__name__}-{next(iter(k))}" for c, k, _ in CASES])
def test_bad_value_names_the_field_the_value_and_what_is_allowed(config_cls, changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config_cls(**changes)


@pytest.mark.parametrize("config_cls", [GPTConfig, VAEConfig, VQVAEConfig, DALLEConfig,
                                        CLIPConfig, PPOConfig, RLHFConfig, SortTask])
def test_defaults_are_valid(config_cls):
    config_cls()


def test_rlhf_config_is_a_ppo_config_and_ppo_update_rejects_duck_typed_configs():
    import types

    import tinygen as tg
    from tinygen.rl.ppo import Agent, ppo_update

    assert isinstance(RLHFConfig(), PPOConfig)
    agent = Agent(4, 2)
    with pytest.raises(TypeError, match="cfg must be a PPOConfig"):
        ppo_update(agent, tg.optim.Adam(agent.parameters()), {"logprobs": []},
                   types.SimpleNamespace(**vars(PPOConfig())))
