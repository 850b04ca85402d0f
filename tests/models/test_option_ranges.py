"""Model options are bounded before anything is allocated, from the command line and from a
received run.json alike (a hidden size of 1e9 once tried to allocate 24 GB)."""

from __future__ import annotations

import json
import re

import pytest

from trustgen.errors import ConfigError, RunError
from trustgen.models import build_model
from trustgen.models.nets import DataSpec

SPEC = DataSpec("tabular", 2, 0, (("numeric", 0, 1), ("numeric", 1, 1)))


@pytest.mark.parametrize("family, option, value, says", [
    ("vae", "hidden", 0, "from 1 to 4096"),
    ("vae", "hidden", -5, "from 1 to 4096"),
    ("vae", "hidden", 10**9, "from 1 to 4096"),
    ("gan", "depth", 10**6, "from 1 to 16"),
    ("vae", "beta", -1.0, "in (0.0"),
    ("vae", "beta", float("nan"), "in (0.0"),
    ("diffusion", "time_dim", 3, "even"),
    ("diffusion", "label_dropout", 1.0, "from 0.0 to 0.99"),
    ("diffusion", "timesteps", 10**7, "from 1 to 100000"),
])
def test_out_of_range_options_are_refused_with_the_allowed_range(family, option, value, says):
    with pytest.raises(ConfigError, match=f"option '{option}' must be.*{re.escape(says)}"):
        build_model(family, SPEC, {option: value})


def test_the_largest_allowed_values_still_build():
    build_model("vae", SPEC, {"hidden": 64, "depth": 16, "latent_dim": 1024, "beta": 1e6})


def test_a_received_run_with_a_huge_option_is_refused_on_load(tmp_path):
    from trustgen.pipeline import train
    from trustgen.run import Run
    from trustgen.training import TrainConfig

    train("breast_cancer", "vae", TrainConfig(steps=1, batch_size=8, progress=False), model_options={"hidden": 8},
          out=tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    meta["model_options"]["hidden"] = 10**9
    (tmp_path / "run" / "run.json").write_text(json.dumps(meta))
    with pytest.raises(RunError, match="'hidden' must be from 1 to 4096"):
        Run.load(tmp_path / "run")
