"""Re-record the regression pins (run only when a change to samples is intended, and say so).

    python tests/regression/make_pins.py

Writes ``tests/regression/pins.npz`` only. The run directories in
``tests/regression/format1_runs/`` were written once, by trustgen before sampling became a stage
(run format 1), and are never rewritten: they are the check that old runs keep loading, so their
pins (``NAME``) are kept as recorded. What training from the seed gives now is recorded beside
them as ``NAME:trained`` where it differs: a deliberate change of a model's initialisation or
training step (e.g. the VAE's log-scale start, 2026-12-03) changes only that key.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pin_cases import CASES, N_SAMPLES, SAMPLE_SEED, case_data  # noqa: E402

from trustgen.pipeline import train  # noqa: E402
from trustgen.sampling import Sampler  # noqa: E402
from trustgen.training import TrainConfig  # noqa: E402

TRAIN = TrainConfig(steps=3, batch_size=16, seed=0, device="cpu", progress=False, log_every=1)


TOL = 1e-5  # as in test_sample_pins.py


def main() -> None:
    old = dict(np.load(HERE / "pins.npz"))
    pins = {key: value for key, value in old.items() if ":trained" not in key}
    for name, (family, kind, options) in CASES.items():
        data, schema = case_data(kind)
        run = train(data, family, TRAIN, schema=schema, model_options=options)
        batch = Sampler(run, marginal_fit=False).sample(N_SAMPLES, seed=SAMPLE_SEED)
        encoded, labels = batch.encoded.numpy(), batch.labels
        same = (name in pins and np.abs(encoded - pins[name]).max() <= TOL
                and (labels is None or np.array_equal(labels, pins[name + ":labels"])))
        if name not in pins:
            pins[name] = encoded
            if labels is not None:
                pins[name + ":labels"] = labels
        elif not same:
            pins[name + ":trained"] = encoded
            if labels is not None:
                pins[name + ":trained:labels"] = labels
            print(f"{name}: training from the seed now differs from the format-1 pin; recorded as {name}:trained")
    np.savez(HERE / "pins.npz", **pins)


if __name__ == "__main__":
    main()
