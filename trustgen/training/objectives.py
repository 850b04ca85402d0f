"""One optimiser step of each objective, chosen by the model's ``objective``.

* ``"likelihood"`` (VAE, diffusion): one optimiser on ``model.loss(x, y).mean()``.
* ``"adversarial"`` (GAN): a discriminator step on ``model.loss`` (the only part that sees
  real records), then a generator step on ``model.generator_loss`` with labels from a prior.

Under DP the private part goes through a :class:`~trustgen.privacy.dp_sgd.PrivateGradients`
and its loss is not reported: a loss of private records is itself a statistic of them.
"""

from __future__ import annotations

import contextlib

import torch

from trustgen.errors import TrainingError
from trustgen.models.base import GenerativeModel
from trustgen.runtime import average_gradients, optimizer_params


def make_optimizers(model: GenerativeModel, lr: float) -> dict[str, torch.optim.Optimizer]:
    """One Adam per parameter group of the model (GANs: discriminator and generator)."""
    betas = (0.5, 0.999) if model.objective == "adversarial" else (0.9, 0.999)
    return {name: torch.optim.Adam(params, lr=lr, betas=betas) for name, params in model.parameter_groups().items()}


def private_part_name(model: GenerativeModel) -> str:
    """The optimiser of the part that sees real records."""
    return "model" if model.objective == "likelihood" else "discriminator"


def train_step(model: GenerativeModel, opts: dict, xb: torch.Tensor, yb: torch.Tensor | None,
               gen: torch.Generator, prior: torch.Tensor | None, batch_size: int, dp=None,
               n: int | None = None) -> dict[str, float]:
    """One step of the model's objective; returns the (non-private) losses to log.

    ``n``: the number of training examples; a Bayesian model's weight KL enters as ``KL / n``
    (the ELBO of the whole data set, per example). Needed when the model is Bayesian."""
    if model.bayesian and not n:
        raise TrainingError("a Bayesian model's training step needs the number of training examples n")
    logs = _real_data_step(model, opts[private_part_name(model)], xb, yb, gen, dp, n)
    if model.objective == "adversarial":
        logs.update(_generator_step(model, opts["generator"], batch_size, prior, gen, dp))
    return logs


def _prior_term(model, n):
    """``KL(q || p) / n`` of a Bayesian model's weights, or None for a deterministic model."""
    return model.prior_penalty() / n if model.bayesian else None


def _real_data_step(model, opt, xb, yb, gen, dp, n) -> dict[str, float]:
    opt.zero_grad(set_to_none=True)
    logs: dict[str, float] = {}
    if dp is not None and len(xb) == 0:
        dp.noise_only_step()  # an empty Poisson batch still gets its noisy step
    else:
        loss = model.loss(xb, yb, generator=gen).float()
        if dp is None:
            check_finite(loss.detach().mean(), model.family)
            prior = _prior_term(model, n)
            (loss.mean() if prior is None else loss.mean() + prior).backward()
            average_gradients(opt)
            logs["loss" if private_part_name(model) == "model" else "d_loss"] = loss.mean().item()
            if prior is not None:
                logs["weight_kl"] = prior.item() * n
        else:
            dp.backward(loss, opt)
    if dp is not None:
        prior = _prior_term(model, n)
        if prior is not None:
            # The weights' KL depends on no record: its gradient joins the noised one unclipped
            # (post-processing), so the posterior is pulled to its prior at the same rate as without DP.
            with dp.hooks_disabled():
                prior.backward(inputs=[p for p in optimizer_params(opt) if p.requires_grad])
            logs["weight_kl"] = prior.item() * n
        # Inspect only the noised gradient (a DP release), never the private loss. One fused
        # norm per parameter, one check: a NaN or inf anywhere makes its norm non-finite.
        grads = [p.grad for p in optimizer_params(opt) if p.grad is not None]
        if grads and not torch.isfinite(torch.stack(torch._foreach_norm(grads))).all():
            raise TrainingError("the DP gradient became NaN/inf: training diverged. Lower --lr "
                                "or --max-grad-norm.")
    opt.step()
    return logs


def _generator_step(model, g_opt, batch_size, prior, gen, dp) -> dict[str, float]:
    g_opt.zero_grad(set_to_none=True)
    with dp.hooks_disabled() if dp is not None else contextlib.nullcontext():
        g_loss = model.generator_loss(batch_size, prior, generator=gen).float().mean()
        # Only the generator is updated; no real record enters this loss.
        g_loss.backward(inputs=optimizer_params(g_opt))
    average_gradients(g_opt)
    g_opt.step()
    return {"g_loss": g_loss.item()}


def check_finite(loss: torch.Tensor, family: str) -> None:
    if not torch.isfinite(loss):
        raise TrainingError(
            f"the {family} loss became {loss.item()}: training diverged. Lower the learning rate (--lr)."
        )
