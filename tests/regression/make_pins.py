"""Re-record the regression pins (run only when a change to samples is intended, and say so).

    python tests/regression/make_pins.py

Writes ``tests/regression/pins.npz`` only. The run directories in
``tests/regression/format1_runs/`` were written once, by trustgen before sampling became a stage
(run format 1), and are never rewritten: they are the check that old runs keep loading.
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


def main() -> None:
    pins = {}
    for name, (family, kind, options) in CASES.items():
        data, schema = case_data(kind)
        run = train(data, family, TRAIN, schema=schema, model_options=options)
        batch = Sampler(run).sample(N_SAMPLES, seed=SAMPLE_SEED)
        pins[name] = batch.encoded.numpy()
        if batch.labels is not None:
            pins[name + ":labels"] = batch.labels
    np.savez(HERE / "pins.npz", **pins)


if __name__ == "__main__":
    main()
