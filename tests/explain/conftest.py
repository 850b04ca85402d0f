"""A labelled two-cluster table whose answers are known: side L around (-3, -3), side R around
(3, 3), a site column independent of both."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from tests.conftest import DEVICE
from trustgen.pipeline import train
from trustgen.training import TrainConfig

SCHEMA = TabularSchema([NumericColumn("a", -6, 6), NumericColumn("b", -6, 6), CategoricalColumn("site", ("x", "y")),
                        CategoricalColumn("side", ("L", "R"))], label="side")


def sides(seed: int = 0, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    side = rng.integers(0, 2, n)
    ab = rng.normal(0, 0.6, (n, 2)) + np.where(side[:, None] == 0, -3.0, 3.0)
    return pd.DataFrame({"a": ab[:, 0], "b": ab[:, 1], "site": rng.choice(["x", "y"], n),
                         "side": np.where(side == 1, "R", "L")})


@pytest.fixture(scope="package")
def labelled():
    """Seed 0: the table, a VAE of it (800 steps) and a VAE with a Bayesian label head."""
    df = sides()
    cfg = TrainConfig(steps=800, batch_size=64, progress=False, seed=0, device=DEVICE)
    run = train(df, "vae", cfg, schema=SCHEMA)
    headed = train(df, "vae", cfg, schema=SCHEMA, model_options={"label_head": "bayes-mlp"})
    return df, run, headed
