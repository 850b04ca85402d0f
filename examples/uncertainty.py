"""Which samples is the model unsure of, and which inputs has it never seen the like of?

  1. trains a VAE on digits with a Bayesian decoder output layer and a Bayesian label head
     (mean-field weights, trained on the ELBO; the same options train under DP);
  2. samples 60 digits with their uncertainty (the spread across 16 posterior weight draws for
     each sample's own latent) and writes them above their per-pixel maps to
     uncertain_digits.png, the most uncertain first;
  3. drops the 20% most uncertain by label disagreement and prints what that leaves;
  4. scores real held-out digits and the same digits inverted (never seen): prints the share
     of each that is more novel than 99% of the model's own samples, and writes the score
     histograms to novelty_scores.png;
  5. shows the label head's confidence with its posterior spread.

    python examples/uncertainty.py [--smoke]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from trustgen.data.datasets import load_digits
from trustgen.data.encoders import ImageData, make_encoder
from trustgen.pipeline import train
from trustgen.plots import save_figure, score_histograms
from trustgen.sampling import Sampler
from trustgen.sampling.writers import write_samples
from trustgen.training import TrainConfig
from trustgen.uncertainty import score_inputs, with_uncertainty

ap = argparse.ArgumentParser()
ap.add_argument("--smoke", action="store_true", help="a few training steps (CI)")
args = ap.parse_args()
steps = 5 if args.smoke else 2000

data, schema = load_digits()
held_out = np.arange(len(data)) % 5 == 0  # a fifth of the digits the model never sees
train_part = ImageData(data.x[~held_out], data.y[~held_out])
run = train(train_part, "vae", TrainConfig(steps=steps, progress=False), schema=schema,
            model_options={"decoder_net": "bayes-mlp", "label_head": "bayes-mlp"})

# 2. samples with their uncertainty maps
batch = with_uncertainty(Sampler(run).sample(60, seed=0), run.model, draws=16, seed=0)
write_samples(batch, "uncertain_digits.png", schema=schema, title="digits")
print(f"uncertainty of 60 samples: median {np.median(batch.uncertainty):.4f}, max {batch.uncertainty.max():.4f} "
      "(posterior std per pixel, intensity in [0, 1]); figure: uncertain_digits.png")

# 3. filtering: keep the 80% the label head agrees with most
keep = np.argsort(batch.label_disagreement)[: int(0.8 * len(batch.label_disagreement))]
print(f"label disagreement: kept {len(keep)} samples, max kept {batch.label_disagreement[keep].max():.3f}, "
      f"max dropped {batch.label_disagreement.max():.3f}")

# 4. novelty of real inputs
x_real = make_encoder(schema).transform(ImageData(data.x[held_out][:200], data.y[held_out][:200]))[0]
draws, reference = (3, 20) if args.smoke else (8, 500)
real = score_inputs(run.model, x_real, label_prior=run.label_prior, draws=draws, reference=reference)
odd = score_inputs(run.model, -x_real, label_prior=run.label_prior, draws=draws, reference=reference)
print(f"more novel than 99% of the model's samples: held-out digits {np.mean(real.p_value < 0.01):.0%}, "
      f"inverted digits {np.mean(odd.p_value < 0.01):.0%}")
save_figure(score_histograms([("held-out digits", {"nll": real.nll, "novelty": real.novelty}),
                              ("inverted digits", {"nll": odd.nll, "novelty": odd.novelty})],
                             title="novelty of real inputs"), "novelty_scores.png")

# 5. the label head's prediction and how sure it is
acc = np.mean(real.label == data.y[held_out][:200])
print(f"label head on held-out digits: accuracy {acc:.1%}, mean confidence {real.label_confidence.mean():.1%}; "
      f"inverted digits labelled with confidence >= 0.9 despite being novel: {int(odd.confident_but_novel.sum())}")
assert torch.isfinite(torch.as_tensor(real.nll)).all()
