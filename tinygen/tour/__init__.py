"""The guided tour's exercises (docs/tour.md): stubbed copies of pieces of tinygen for a
reader to finish, and the checks that say whether they are right.

    python -m tinygen.tour list               # the exercises and where they are
    python -m tinygen.tour check 3            # check your tinygen/tour/ex03_unbroadcast.py
    python -m tinygen.tour check all

The library never imports this package: an unfinished stub breaks nothing else. The
reference answers are in tinygen/tour/solutions/ (CI checks that every check fails on the
stub and passes on the solution); try each exercise before you look.
"""

import importlib

# number -> (module in tinygen/tour/, what to do, the module holding its check)
EXERCISES = {
    1: ("ex01_tanh", "write Tanh.backward", "checks"),
    2: ("ex02_topo", "write topological_order without recursion", "checks"),
    3: ("ex03_unbroadcast", "write unbroadcast, the backward of broadcasting", "checks"),
    4: ("ex04_layer_norm", "write the fused backward of layer norm", "checks"),
    5: ("ex05_module", "build a Linear layer from nn.Parameter", "checks"),
    6: ("ex06_adam", "turn an SGD step into an Adam step", "checks"),
    7: ("ex07_attention", "make attention non-causal when asked", "checks"),
    8: ("ex08_top_p", "add top-p (nucleus) filtering", "checks"),
    9: ("ex09_vae", "write the reparameterisation trick", "checks"),
    10: ("ex10_gan", "make the generator loss non-saturating", "checks"),
    11: ("ex11_ppo", "clip PPO's probability ratio", "checks"),
    12: ("ex12_kl", "write the adaptive KL controller", "checks"),
    13: ("ex13_clip", "make CLIP's loss symmetric", "checks"),
    14: ("ex14_vq", "write the straight-through estimator", "checks"),
    15: ("ex15_grpo", "normalise rewards within each group", "checks"),
    16: ("llama", "turn the GPT LLaMA-style: RMSNorm, SwiGLU, RoPE", "checks_llama"),
}


def load(n, solution=False):
    """The reader's module of exercise n (or, solution=True, the reference answer)."""
    name = EXERCISES[n][0]
    package = "tinygen.tour.solutions" if solution else "tinygen.tour"
    return importlib.import_module(f"{package}.{name}")


def check(n, solution=False):
    """Run exercise n's check; raises (AssertionError, NotImplementedError, ...) unless
    the answer is right."""
    if n not in EXERCISES:
        raise ValueError(f"tour: no exercise {n}; there are 1 to {len(EXERCISES)}")
    checks = importlib.import_module(f"tinygen.tour.{EXERCISES[n][2]}")
    getattr(checks, f"check_{n}")(load(n, solution))
