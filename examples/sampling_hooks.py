"""Sampling as a stage: typed hooks, sampler settings, re-draws and the soft decode.

Trains a small diffusion model on breast_cancer, then:
  1. samples with a chosen SamplerConfig (DDIM steps, guidance) instead of model options;
  2. adds a noise hook (a stand-in for a watermark: it reports a key id), a per-step hook that
     keeps the first feature's x0 estimate in the upper half of its range, and an output hook
     that flags samples meeting a rule;
  3. re-draws the samples that miss the rule (what rejection sampling does);
  4. takes the gradient of a soft decoding with respect to the latent (what counterfactual
     search and guidance build on).

    python examples/sampling_hooks.py [--smoke]
"""

from __future__ import annotations

import argparse

import torch

from trustgen.pipeline import train
from trustgen.sampling import NoiseResult, OutputResult, Sampler, SamplerConfig, StepOutput
from trustgen.training import TrainConfig

ap = argparse.ArgumentParser()
ap.add_argument("--smoke", action="store_true", help="a few steps only (CI)")
args = ap.parse_args()

run = train("breast_cancer", "diffusion", TrainConfig(steps=20 if args.smoke else 3000, progress=not args.smoke),
            model_options={"hidden": 32} if args.smoke else {})
config = SamplerConfig(steps=10 if args.smoke else 50)


def tag_noise(z, labels, generator):
    """A noise hook: leaves z as it is here, and reports which key it would have embedded."""
    return NoiseResult(z, key_id="demo-key")


def lift_first_feature(state):
    """A per-step hook: keep the first feature's x0 estimate in [0, 1] (model space)."""
    x0 = state.output.pred_x0.clone()
    x0[:, 0] = x0[:, 0].clamp(0.0, 1.0)
    return StepOutput(state.output.prev_sample + (x0 - state.output.pred_x0) * 0.1, x0)


def second_feature_rule(x, labels):
    """An output hook: flag samples whose second feature is in the upper half of its range."""
    return OutputResult(x, x[:, 1] >= 0)


sampler = Sampler(run, config=config, noise_hooks=[tag_noise], step_hooks=[lift_first_feature],
                  output_hooks=[second_feature_rule])
batch = sampler.sample(200, seed=0)
print(f"key id {batch.watermark_key_id}; {batch.constraints_satisfied.mean():.0%} of samples meet the rule")
for round_ in range(5):
    misses = (~batch.constraints_satisfied).nonzero()[0]
    if len(misses) == 0:
        break
    batch = sampler.redraw(batch, misses, seed=round_ + 1)
print(f"after re-draws: {batch.constraints_satisfied.mean():.0%} meet the rule")

z = run.model.sample_noise(4, torch.Generator().manual_seed(0)).requires_grad_(True)
soft = run.model.generate(z, torch.zeros(4, dtype=torch.long), hard=False, sampler=config)
soft[:, 1].sum().backward()
print(f"gradient of the second feature with respect to z: norm {z.grad.norm():.3g}")
