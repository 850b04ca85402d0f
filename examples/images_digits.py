"""Class-conditional image generation on the built-in 8x8 digits, with a sample grid.

    python examples/images_digits.py [--model diffusion] [--out digits.png] [--smoke]
"""

import argparse

import numpy as np

from trustgen.plots import image_grid, save_figure
from trustgen.pipeline import train
from trustgen.training import TrainConfig
from trustgen.sampling import Sampler

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="diffusion", choices=["vae", "gan", "diffusion"])
ap.add_argument("--out", default="digits.png")
ap.add_argument("--smoke", action="store_true", help="a few steps only (CI)")
args = ap.parse_args()

run = train("digits", args.model, TrainConfig(steps=10 if args.smoke else 4000, progress=not args.smoke))
batch = Sampler(run).sample(100, labels=np.repeat(np.arange(10), 10), seed=0)
save_figure(image_grid(batch.data.x, batch.labels, low=0, high=16, title=f"{args.model} on digits"), args.out)
print(f"wrote {args.out}")
