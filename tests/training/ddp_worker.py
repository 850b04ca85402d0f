"""Run by test_distributed.py under torchrun: DP-train on 2 ranks, save each rank's weights."""

import sys

import torch
import torch.distributed as dist

from trustgen.privacy.config import PrivacyConfig
from trustgen.pipeline import train
from trustgen.training import TrainConfig

dist.init_process_group("gloo")
run = train("breast_cancer", "gan", TrainConfig(steps=5, batch_size=32, progress=False),
            model_options={"hidden": 16}, privacy=PrivacyConfig(3.0))
torch.save(run.model.state_dict(), f"{sys.argv[1]}.{dist.get_rank()}")
dist.destroy_process_group()
