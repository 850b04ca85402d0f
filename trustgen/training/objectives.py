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
               gen: torch.Generator, prior: torch.Tensor | None, batch_size: int, dp=None) -> dict[str, float]:
    """One step of the model's objective; returns the (non-private) losses to log."""
    logs = _real_data_step(model, opts[private_part_name(model)], xb, yb, gen, dp)
    if model.objective == "adversarial":
        logs.update(_generator_step(model, opts["generator"], batch_size, prior, gen, dp))
    return logs


def _real_data_step(model, opt, xb, yb, gen, dp) -> dict[str, float]:
    opt.zero_grad(set_to_none=True)
    logs: dict[str, float] = {}
    if dp is not None and len(xb) == 0:
        dp.noise_only_step()  # an empty Poisson batch still gets its noisy step
    else:
        loss = model.loss(xb, yb, generator=gen).float()
        if dp is None:
            check_finite(loss.detach().mean(), model.family)
            loss.mean().backward()
            average_gradients(opt)
            logs["loss" if private_part_name(model) == "model" else "d_loss"] = loss.mean().item()
        else:
            dp.backward(loss, opt)
    if dp is not None:
        # Inspect only the noised gradient (a DP release), never the private loss.
        for p in optimizer_params(opt):
            if p.grad is not None and not torch.isfinite(p.grad).all():
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
