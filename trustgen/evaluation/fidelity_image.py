"""Fidelity of synthetic images, measured in a feature space.

:func:`frechet_distance` and :func:`prdc` compare two sets of feature vectors. The features can
come from :class:`FeatureExtractor`, a small conv net trained here on the real training images,
since trustgen downloads no pretrained weights. Because that network is fitted to the private
real data, and the metrics read the real features directly, NONE of these numbers is
differentially private: treat them (and the fitted extractor) as private.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np
import torch
from scipy import linalg
from sklearn.neighbors import NearestNeighbors
from torch import nn

from trustgen.errors import DataError
from trustgen.evaluation.checks import as_labels, as_matrix, same_width, to_numpy


def frechet_distance(feats_real: Any, feats_synth: Any, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (FID-style).

    ``|mu_r - mu_s|^2 + Tr(S_r + S_s - 2 (S_r S_s)^{1/2})``. If ``S_r S_s`` is singular or its
    square root is not finite, ``eps * I`` is added to both covariances; small imaginary
    parts from numerical error are dropped. For N(0, I) vs N(mu, I) the value is ``|mu|^2``.

    Range and direction: [0, inf); 0 is ideal, higher is worse. The value depends on the
    feature space and is biased upwards for small samples, so compare only numbers computed
    with the same extractor and sample sizes.

    Args:
        feats_real: Real features, shape (n_real, d), n_real >= 2.
        feats_synth: Synthetic features, shape (n_synth, d), n_synth >= 2.
        eps: Diagonal jitter used only when the square root is not finite.

    Returns:
        The distance as a float.

    Raises:
        DataError: on empty/NaN inputs, fewer than 2 rows, or different feature counts.
    """
    a = as_matrix(feats_real, "feats_real", min_rows=2)
    b = as_matrix(feats_synth, "feats_synth", min_rows=2)
    same_width({"feats_real": a, "feats_synth": b})
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = _sqrtm_or_none(s1 @ s2)
    if covmean is None:  # singular product (e.g. dead ReLU features, n < d): regularise
        jitter = eps * np.eye(len(s1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((s1 + jitter) @ (s2 + jitter))
    covmean = np.real(covmean)  # drop imaginary parts left by numerical error
    fd = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    return max(fd, 0.0)


def _sqrtm_or_none(a: np.ndarray) -> np.ndarray | None:
    """Matrix square root of ``a``, or None if scipy flags it as singular or it is not finite."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            root = linalg.sqrtm(a)
        except linalg.LinAlgWarning:
            return None
    return root if np.isfinite(root).all() else None


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of every row of ``x`` to its k-th nearest other row."""
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return dist[:, -1]


def prdc(real_feats: Any, synth_feats: Any, k: int = 5, chunk_size: int = 1024) -> dict[str, float]:
    """Precision, recall, density and coverage of Naeem et al. (2020), "Reliable Fidelity and
    Diversity Metrics for Generative Models".

    Each real point gets a ball reaching its k-th nearest real neighbour (synthetic points
    likewise for recall). Precision: share of synthetic points inside some real ball (fidelity).
    Recall: share of real points inside some synthetic ball (diversity). Density: mean number of
    real balls containing a synthetic point, divided by k (fidelity, robust to outliers).
    Coverage: share of real balls containing at least one synthetic point (diversity).

    Range and direction: precision, recall and coverage are in [0, 1], higher is better;
    density is in [0, n_real / k], about 1 when the distributions match (for identical
    distributions coverage is about ``1 - 2**-k``). A generator that copies real points scores
    perfectly: these are fidelity/diversity, not privacy, metrics.

    Args:
        real_feats: Real features, shape (n_real, d), n_real > k.
        synth_feats: Synthetic features, shape (n_synth, d), n_synth > k.
        k: Number of neighbours defining the ball radii.
        chunk_size: Synthetic rows per distance block (bounds memory at chunk_size x n_real).

    Returns:
        ``{"precision", "recall", "density", "coverage"}`` as floats.

    Raises:
        DataError: on empty/NaN inputs, too few rows for ``k``, or different feature counts.
    """
    if k < 1:
        raise DataError(f"k must be >= 1, got {k}.")
    real = as_matrix(real_feats, "real_feats", min_rows=k + 1)
    fake = as_matrix(synth_feats, "synth_feats", min_rows=k + 1)
    same_width({"real_feats": real, "synth_feats": fake})
    r_real, r_fake = _knn_radii(real, k), _knn_radii(fake, k)
    inside_count = np.zeros(len(fake))
    recalled = np.zeros(len(real), dtype=bool)
    nearest_fake = np.full(len(real), np.inf)
    for start in range(0, len(fake), chunk_size):
        block = fake[start:start + chunk_size]
        d = np.sqrt(np.maximum(
            (block**2).sum(1)[:, None] + (real**2).sum(1)[None, :] - 2.0 * block @ real.T, 0.0))
        inside_count[start:start + len(block)] = (d < r_real[None, :]).sum(axis=1)
        recalled |= (d < r_fake[start:start + len(block), None]).any(axis=0)
        nearest_fake = np.minimum(nearest_fake, d.min(axis=0))
    return {
        "precision": float((inside_count > 0).mean()),
        "recall": float(recalled.mean()),
        "density": float(inside_count.mean() / k),
        "coverage": float((nearest_fake < r_real).mean()),
    }


class _ConvNet(nn.Module):
    def __init__(self, in_channels: int, n_classes: int, width: int, feature_dim: int) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
                    nn.GroupNorm(min(8, cout), cout), nn.ReLU()]

        self.body = nn.Sequential(
            *block(in_channels, width, 1), *block(width, 2 * width, 2),
            *block(2 * width, 2 * width, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class FeatureExtractor:
    """A small conv-net classifier whose penultimate layer provides image features.

    The network (3 conv blocks with GroupNorm, no BatchNorm, global average pooling, one hidden
    linear layer) is trained from scratch on the REAL training images and labels; no weights
    are downloaded. Because it is fitted to the private real data, the extractor and every
    metric computed with it (FD, PRDC, label coverage) are NOT differentially private: keep
    them with the private artefacts, and fit it on real data only (never on synthetic data
    you are evaluating). All randomness (initialisation, shuffling) comes from an explicit
    ``torch.Generator`` seeded with ``seed``; global RNG state is not touched.

    Args:
        feature_dim: Size of the penultimate (feature) layer.
        width: Channels of the first conv block (later blocks use twice as many).
        epochs: Training epochs.
        batch_size: Mini-batch size.
        lr: Adam learning rate.
        seed: Seed of the generator used for initialisation and shuffling.
    """

    def __init__(self, feature_dim: int = 64, width: int = 16, epochs: int = 5,
                 batch_size: int = 64, lr: float = 1e-3, seed: int = 0) -> None:
        self.feature_dim, self.width, self.epochs = feature_dim, width, epochs
        self.batch_size, self.lr, self.seed = batch_size, lr, seed
        self.net_: _ConvNet | None = None
        self.n_classes_: int | None = None
        self.input_shape_: tuple[int, ...] | None = None

    def _images(self, x: Any, name: str) -> torch.Tensor:
        arr = to_numpy(x)
        if arr.ndim != 4 or arr.shape[0] == 0:
            raise DataError(f"{name} must be a non-empty N x C x H x W array, got shape "
                            f"{arr.shape}; add a channel axis for grey images: x[:, None].")
        if self.input_shape_ is not None and arr.shape[1:] != self.input_shape_:
            raise DataError(f"{name} has image shape {arr.shape[1:]} but the extractor was fitted "
                            f"on {self.input_shape_}; resize the images to match.")
        arr = arr.astype(np.float32, copy=False)
        if not np.isfinite(arr).all():
            raise DataError(f"{name} contains NaN/inf pixels; clean them before evaluating.")
        return torch.from_numpy(np.ascontiguousarray(arr))

    def fit(self, x: Any, y: Any) -> FeatureExtractor:
        """Train the classifier on real images ``x`` (N x C x H x W floats) and labels ``y``.

        Labels must be integers in ``[0, n_classes)``; ``n_classes = max(y) + 1``.
        """
        xt = self._images(x, "x")
        yl = as_labels(y, "y", n=len(xt))
        if not np.issubdtype(yl.dtype, np.integer) or yl.min() < 0:
            raise DataError("y must hold non-negative integer class indices; map labels to 0..K-1.")
        yt = torch.from_numpy(yl.astype(np.int64))
        g = torch.Generator().manual_seed(self.seed)
        self.n_classes_ = int(yl.max()) + 1
        self.input_shape_ = tuple(xt.shape[1:])
        with torch.random.fork_rng(devices=[]):  # default init must not advance the global RNG
            net = _ConvNet(xt.shape[1], self.n_classes_, self.width, self.feature_dim)
        for m in net.modules():  # seeded re-initialisation; GroupNorm's default init is constant
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=g)
                nn.init.zeros_(m.bias)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        net.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(xt), generator=g)
            for i in range(0, len(xt), self.batch_size):
                idx = order[i:i + self.batch_size]
                loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.net_ = net.eval()
        return self

    def _check_fitted(self) -> _ConvNet:
        if self.net_ is None:
            raise DataError("FeatureExtractor is not fitted; call fit(x_real, y_real) first.")
        return self.net_

    @torch.no_grad()
    def _in_batches(self, x: Any, fn: Callable[[_ConvNet, torch.Tensor], torch.Tensor]) -> np.ndarray:
        """``fn(net, batch)`` over images ``x`` in batches of 512, concatenated."""
        net = self._check_fitted()
        xt = self._images(x, "x")
        return np.concatenate([fn(net, xt[i:i + 512]).numpy() for i in range(0, len(xt), 512)])

    def transform(self, x: Any) -> np.ndarray:
        """Penultimate-layer features of images ``x``, shape (N, feature_dim), float64."""
        return self._in_batches(x, lambda net, b: net.body(b).double())

    def predict(self, x: Any) -> np.ndarray:
        """Predicted class index of each image in ``x``, shape (N,)."""
        return self._in_batches(x, lambda net, b: net(b).argmax(1))
