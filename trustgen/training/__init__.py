"""Training: settings, objectives, checkpoints and the loop."""

from trustgen.training.config import TrainConfig
from trustgen.training.trainer import Trainer, TrainResult

__all__ = ["TrainConfig", "Trainer", "TrainResult"]
