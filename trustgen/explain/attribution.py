"""Attributions through Captum, with the counterfactual as the baseline: which features carry
the difference between a record and its counterfactual in the classifier's output.

``attribute(model, inputs, target, baselines)`` runs Integrated Gradients (or DeepLift, or
GradientShap) on the classifier in the data's units. With a counterfactual as ``baselines``,
the attributions of one record sum to ``f_target(inputs) - f_target(baselines)`` (the
completeness axiom of Integrated Gradients; ``delta`` is how far the numerical path integral is
from it, and falls with ``n_steps``). Per-feature totals add up a categorical column's one-hot
coordinates. Captum's argument names throughout.

Example:
    >>> a = attribute(clf, inputs=units, target=1, baselines=res_units)  # doctest: +SKIP
    >>> a.per_feature.shape, float(abs(a.delta).max()) < 1e-2  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch import nn

from trustgen.errors import ConfigError
from trustgen.explain.scorer import evaluation_mode

Method = Literal["integrated_gradients", "deeplift", "gradient_shap", "feature_ablation"]
METHODS = ("integrated_gradients", "deeplift", "gradient_shap", "feature_ablation")


@dataclass(frozen=True)
class Attribution:
    """``values``: per coordinate ``[n, dim]``; ``per_feature``: per column (``names``);
    ``delta``: completeness error per input (None for GradientShap, a sampled method, and for
    feature ablation, which promises none)."""

    values: np.ndarray
    per_feature: np.ndarray
    names: list[str]
    delta: np.ndarray | None
    method: str


def attribute(model: nn.Module | Callable, inputs: torch.Tensor, target: Any, baselines: torch.Tensor, *,
              method: Method = "integrated_gradients", n_steps: int = 64, features: list | None = None,
              names: list[str] | None = None, seed: int = 0) -> Attribution:
    """Attributions of ``model``'s ``target`` logit at ``inputs`` relative to ``baselines``.

    Args:
        model: the classifier on units ``[n, dim]``. ``feature_ablation`` (Captum's
            FeatureAblation: each feature set to its baseline value, one at a time) needs no
            gradient: ``model`` may be any function of units, e.g. a black box's probabilities.
        inputs, baselines: units ``[n, dim]`` (e.g. ``Space.to_units`` of the encoded records
            and of their counterfactuals).
        target: class index, one or per input.
        features: coordinate groups summed into one feature each (default: every coordinate).
        names: the features' names.
    """
    from captum.attr import DeepLift, FeatureAblation, GradientShap, IntegratedGradients

    x = torch.as_tensor(inputs, dtype=torch.float32)
    b = torch.as_tensor(baselines, dtype=torch.float32).to(x.device)
    if x.dim() != 2 or b.shape != x.shape:
        raise ConfigError(f"inputs and baselines must both be [n, dim] units, got {tuple(x.shape)} and {tuple(b.shape)}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 2:
        raise ConfigError(f"n_steps must be an integer of at least 2, got {n_steps!r}")
    t = torch.as_tensor(np.broadcast_to(np.asarray(target), (len(x),)).copy()).long().to(x.device)
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method != "feature_ablation":
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{method} needs a torch classifier (its gradient); a black box takes feature_ablation")
        model = evaluation_mode(model)
    groups = features if features is not None else [np.array([i]) for i in range(x.shape[1])]
    delta = None
    if method == "feature_ablation":
        mask = torch.zeros(1, x.shape[1], dtype=torch.long, device=x.device)
        for j, g in enumerate(groups):
            mask[0, torch.as_tensor(np.asarray(g))] = j
        with torch.no_grad():
            values = FeatureAblation(model).attribute(x, baselines=b, target=t, feature_mask=mask)
        values = values.detach().cpu().numpy()
        per = np.stack([values[:, int(np.asarray(g)[0])] for g in groups], 1)  # a group's value sits on each coordinate
        return Attribution(values, per, list(names) if names is not None else [str(i) for i in range(len(groups))],
                           None, method)
    if method == "integrated_gradients":
        values, delta = IntegratedGradients(model).attribute(x, baselines=b, target=t, n_steps=n_steps,
                                                             return_convergence_delta=True)
    elif method == "deeplift":
        values, delta = DeepLift(model).attribute(x, baselines=b, target=t, return_convergence_delta=True)
    elif method == "gradient_shap":
        # Captum's GradientShap draws from torch's and numpy's global generators: both seeded here
        # and put back as they were after
        np_state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
                torch.manual_seed(seed)
                np.random.seed(seed)
                values = GradientShap(model).attribute(x, baselines=torch.cat([b, x]), target=t, n_samples=n_steps)
        finally:
            np.random.set_state(np_state)
    values = values.detach().cpu().numpy()
    per = np.stack([values[:, np.asarray(g)].sum(1) for g in groups], 1)
    return Attribution(values, per, list(names) if names is not None else [str(i) for i in range(len(groups))],
                       None if delta is None else delta.detach().cpu().numpy(), method)


__all__ = ["Attribution", "attribute"]
