"""DP label frequencies: a Gaussian histogram of the class counts, for the sampling prior.

Under add/remove-one-record adjacency (the relation the accountant uses) one record changes
one class count by 1, so the count vector has L2 sensitivity 1 and ``counts + N(0, sigma^2 I)``
is the Gaussian mechanism with noise multiplier ``sigma``: to the accountant, one segment
``(sigma, sample_rate=1.0, steps=1)``, composed with DP-SGD's steps in the same history (PRV or
RDP, never an addition of epsilons). :func:`trustgen.privacy.plan.plan_privacy` calibrates
``sigma`` so that the histogram alone spends ``label_budget * epsilon``.

The noise is drawn from the run's secret :class:`~trustgen.privacy.secure_random.SecureRandom`
at the fixed address :data:`LABEL_NOISE_ADDRESS`, never from torch's global generator: so it is
unpredictable to anyone without the key, identical on every rank of a distributed run (the
counts are summed over ranks first and the noise enters once), and a resumed run recomputes
exactly the prior it released before (same key, same data), which therefore costs nothing more.

What follows the noise is post-processing (free under DP): negative counts are set to 0 and
the rest normalised; if no count stays above 0 the prior falls back to uniform.

Example:
    >>> from trustgen.privacy.secure_random import SecureRandom, key_from_seed
    >>> y = torch.tensor([0] * 950 + [1] * 50)
    >>> prior = private_label_prior(y, 2, noise_multiplier=5.0, rng=SecureRandom(key_from_seed(0)))
    >>> len(prior), round(sum(prior), 12), 0.9 < prior[0] < 1.0
    (2, 1.0, True)
"""

from __future__ import annotations

import torch

from trustgen.errors import DataError
from trustgen.privacy.accounting import check_noise_multiplier
from trustgen.privacy.secure_random import SecureRandom
from trustgen.runtime import dist_info

#: Where the histogram's noise is drawn in the secret keystream: (purpose, step, part). One
#: release per run, so one fixed address, the same on every rank.
LABEL_NOISE_ADDRESS: tuple[str, int, int] = ("label-histogram", 0, 0)


def label_counts(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The class counts of ``y`` (float64, on ``y``'s device), summed over all ranks when several
    processes each hold a shard (every rank gets the same total)."""
    if y.dim() != 1:
        raise DataError(f"labels must be one class index per record (shape [N]), got shape {tuple(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        # A label outside the declared classes would add a bin the accountant knows nothing about.
        raise DataError(f"labels must lie in [0, {n_classes}) (the schema's classes), got "
                        f"{int(y.min())}..{int(y.max())}")
    counts = torch.bincount(y.long(), minlength=n_classes).to(torch.float64)
    if dist_info()[1] > 1:
        import torch.distributed as dist

        dist.all_reduce(counts, op=dist.ReduceOp.SUM)
    return counts


def noisy_prior(counts: torch.Tensor, noise_multiplier: float, rng: SecureRandom) -> list[float]:
    """``counts + sigma * z`` (z from ``rng`` at :data:`LABEL_NOISE_ADDRESS`), negatives set to
    0, normalised; uniform if nothing stays above 0. Pure post-processing after the noise."""
    sigma = check_noise_multiplier(noise_multiplier)
    k = counts.numel()
    z = rng.normal((k,), *LABEL_NOISE_ADDRESS).to(torch.float64)
    noisy = (counts.detach().cpu().to(torch.float64) + sigma * z).clamp(min=0.0)
    total = float(noisy.sum())
    if not total > 0:
        return [1.0 / k] * k
    return (noisy / total).tolist()


def private_label_prior(y: torch.Tensor, n_classes: int, noise_multiplier: float, rng: SecureRandom) -> list[float]:
    """The DP class probabilities of labels ``y`` (this rank's shard; see the module docstring).

    Args:
        y: class indices in ``[0, n_classes)``, one per record of this rank.
        n_classes: number of classes (public: the schema's).
        noise_multiplier: sigma of the Gaussian on each count (sensitivity 1).
        rng: the run's secret source (same key on every rank).

    Returns:
        ``n_classes`` probabilities summing to 1.
    """
    return noisy_prior(label_counts(y, n_classes), noise_multiplier, rng)


__all__ = ["LABEL_NOISE_ADDRESS", "label_counts", "noisy_prior", "private_label_prior"]
