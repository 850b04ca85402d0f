"""Tiny untrained runs of every family (sampling needs no training to be tested)."""

from __future__ import annotations

import os

import torch

from trustgen.data.encoders import make_encoder
from trustgen.data.schema import CategoricalColumn, ImageSchema, NumericColumn, TabularSchema
from trustgen.models import build_model
from trustgen.models.nets import DataSpec
from trustgen.run import Run

TABLE = TabularSchema([NumericColumn("a", 0, 10), CategoricalColumn("c", ("x", "y", "z")),
                       CategoricalColumn("label", ("no", "yes"))], label="label", source="declared")
IMAGES = ImageSchema(channels=1, height=8, width=8, low=0.0, high=16.0, classes=tuple(range(10)), source="declared")
SMALL = {"vae": {"hidden": 16, "width": 4}, "gan": {"hidden": 16, "width": 4},
         "diffusion": {"hidden": 16, "width": 8, "timesteps": 20}}


# TRUSTGEN_TEST_DEVICE=cuda puts the models on the GPU (the sampling streams stay on the CPU).
DEVICE = os.environ.get("TRUSTGEN_TEST_DEVICE", "cpu")


def make_run(family: str, schema=TABLE, device: str = DEVICE) -> Run:
    torch.manual_seed(0)
    model = build_model(family, DataSpec.from_encoder(make_encoder(schema)), SMALL[family]).to(device).eval()
    k = schema.n_classes
    return Run(model, schema, {}, [1.0 / k] * k if k else None)

