"""Uncertainty of a Bayesian run: per-sample spread across posterior draws, novelty of inputs.

* :func:`~trustgen.uncertainty.posterior.sample_uncertainty`: for generated samples, the spread
  of the decoder's output across weight draws for the same latent (a score per sample, and a
  map per pixel for images).
* :func:`~trustgen.uncertainty.novelty.score_inputs`: for real inputs, the model's negative
  ELBO (how unlikely the input is), its spread across weight draws (how unsure the model is of
  that), and the label prediction with its confidence.

Both need a run with Bayesian layers (``--option decoder_net=bayes-mlp``, and
``label_head=bayes-mlp`` for a calibrated label head); see docs/uncertainty.md.
"""

from trustgen.uncertainty.novelty import InputScores, score_inputs
from trustgen.uncertainty.posterior import SampleUncertainty, posterior_draws, sample_uncertainty, with_uncertainty

__all__ = ["InputScores", "SampleUncertainty", "posterior_draws", "sample_uncertainty", "score_inputs", "with_uncertainty"]
