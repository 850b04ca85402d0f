"""The cases pinned by tests/regression: every family on a table and on images, tiny and fast.

Each case trains a few steps from a fixed seed on fixed data; its samples (seed 0) were
recorded by ``make_pins.py`` on a CPU and the run directory was saved as a fixture, so a
refactor that changes what a model samples, or breaks loading runs written before it, fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trustgen.data.encoders import ImageData
from trustgen.data.loaders import load_data
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema

N_SAMPLES = 6
SAMPLE_SEED = 0

CASES = {
    "vae-tabular": ("vae", "tabular", {"hidden": 16, "latent_dim": 4}),
    "gan-tabular": ("gan", "tabular", {"hidden": 16, "latent_dim": 4}),
    "diffusion-tabular": ("diffusion", "tabular", {"hidden": 16, "timesteps": 40, "sample_steps": 8}),
    "diffusion-tabular-ddpm": ("diffusion", "tabular", {"hidden": 16, "timesteps": 20, "sampler": "ddpm"}),
    "vae-image": ("vae", "image", {"width": 4, "latent_dim": 4}),
    "gan-image": ("gan", "image", {"width": 4, "latent_dim": 4}),
    "diffusion-image": ("diffusion", "image", {"width": 8, "timesteps": 40, "sample_steps": 5}),
}


def case_data(kind: str):
    """Fixed, public toy data: a 2-number, 1-category table with a label, or 60 digits."""
    if kind == "image":
        data, schema = load_data("digits")
        return ImageData(data.x[:60], data.y[:60]), schema
    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame({"a": rng.uniform(0, 10, n), "b": rng.normal(0, 1, n).clip(-4, 4),
                       "c": rng.choice(["x", "y", "z"], n), "label": rng.choice(["no", "yes"], n)})
    schema = TabularSchema([NumericColumn("a", 0, 10), NumericColumn("b", -4, 4),
                            CategoricalColumn("c", ("x", "y", "z")), CategoricalColumn("label", ("no", "yes"))],
                           label="label", source="declared")
    return df, schema
