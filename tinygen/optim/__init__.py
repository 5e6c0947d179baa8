"""tinygen.optim: SGD, Adam, AdamW, gradient clipping and learning-rate schedules."""

from tinygen.optim import lr_scheduler  # noqa: F401
from tinygen.optim.adam import Adam, AdamW  # noqa: F401
from tinygen.optim.clip import clip_grad_norm_  # noqa: F401
from tinygen.optim.optimizer import Optimizer  # noqa: F401
from tinygen.optim.sgd import SGD  # noqa: F401
