"""Training loop."""

from trustgen.training.trainer import TrainConfig, Trainer, TrainResult, resolve_device

__all__ = ["TrainConfig", "Trainer", "TrainResult", "resolve_device"]
