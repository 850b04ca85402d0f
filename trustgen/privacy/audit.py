"""Empirical privacy audit with canaries: can a membership attack see the training records?

Protocol (one training run, in the spirit of Steinke, Nasr & Jagielski 2023):

1. Draw ``2m`` canary records uniformly from the schema's *declared* domain (no private data
   is read to make them: they are outliers by construction, the records a model is most
   likely to memorise).
2. Flip a fair, seeded coin for each: heads are inserted into the training data (members),
   tails are held out (non-members). Train with the user's settings.
3. Score every canary with the model's own likelihood (``-loss``, averaged over several noise
   draws; the discriminator's score for a GAN). Members should score higher.
4. Bound epsilon from below with the one-run analysis of Steinke, Nasr & Jagielski (2023): guess
   "member" for the highest-scoring canaries and "non-member" for the lowest, and find the largest
   epsilon under which that many correct guesses would be unlikely (p < 1 - confidence). The coins
   are independent, so the confidence holds although all canaries share one training run (a
   Clopper-Pearson bound over canaries would treat them as independent trials, which they are not).

What it shows: a lower bound on the epsilon this whole training pipeline can actually leak to an
adversary who sees only the released model. A bound above the claimed epsilon means a bug. What it
does not show: that the claimed epsilon holds (an audit can only refute a guarantee, never prove
it); a black-box attack is weak, so its bound sits far below the claim even for a correct mechanism.
The tight audit of the DP-SGD mechanism itself is :mod:`trustgen.privacy.audit_dp_sgd`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import torch

from trustgen.data.encoders import Data, ImageData, make_encoder
from trustgen.data.schema import Schema


@dataclass
class AuditResult:
    """Outcome of :func:`audit` (all plain Python types: JSON-ready via ``to_dict``)."""

    epsilon_lower_bound: float
    claimed_epsilon: float | None
    canaries: int
    members: int
    attack_auc: float
    guesses: int
    correct_guesses: int
    delta: float
    confidence: float
    family: str

    def to_dict(self) -> dict:
        return asdict(self)


def make_canaries(schema: Schema, count: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """``count`` encoded records drawn uniformly from the declared domain (data-independent)."""
    enc = make_encoder(schema)
    k = schema.n_classes
    y = torch.randint(k, (count,), generator=generator).numpy() if k else None
    if hasattr(enc, "blocks"):
        x = np.zeros((count, enc.dim))
        for b in enc.blocks:
            if b.kind == "numeric":
                x[:, b.start] = (torch.rand(count, generator=generator) * 2 - 1).numpy()
            else:
                x[np.arange(count), b.start + torch.randint(b.size, (count,), generator=generator).numpy()] = 1.0
        return x, y
    return (torch.rand((count, *schema.shape), generator=generator) * 2 - 1).numpy().astype(np.float64), y


def _with_records(data: Data, schema: Schema, x_enc: np.ndarray, y: np.ndarray | None) -> Data:
    decoded = make_encoder(schema).inverse_transform(x_enc, y)
    if isinstance(data, ImageData):
        ys = None if data.y is None else np.concatenate([data.y, decoded.y])
        return ImageData(np.concatenate([data.x, decoded.x]), ys)
    import pandas as pd

    return pd.concat([data, decoded], ignore_index=True)


@torch.no_grad()
def membership_scores(model, x: torch.Tensor, y: torch.Tensor | None, draws: int = 16, seed: int = 0) -> np.ndarray:
    """Higher = more likely a training member: the model's mean log-likelihood proxy
    ``-loss`` over ``draws`` noise draws (the discriminator's logit for a GAN)."""
    model.eval()
    if model.family == "gan":
        return model.discriminator(x, model.label_vector(y, len(x), x)).cpu().numpy()
    g = torch.Generator().manual_seed(seed)
    return -torch.stack([model.loss(x, y, generator=g) for _ in range(draws)]).mean(0).cpu().numpy()


class TrainFunction(Protocol):
    """What :func:`audit` trains with: the signature of the pipeline's ``train``."""

    def __call__(self, data: Data, family: str, config: Any, *, schema: Schema,
                 model_options: dict | None, privacy: Any) -> Any:
        """Train and return a run with ``.model`` and ``.privacy`` (a PrivacyReport)."""


def audit(data: Data, schema: Schema, family: str, config, *, train: TrainFunction, privacy=None,
          canaries: int = 200, seed: int = 0, model_options: dict | None = None,
          confidence: float = 0.95) -> AuditResult:
    """Insert half of ``canaries`` random-domain records, train, and bound epsilon from below.

    Args:
        data, schema: the private training data and its declared schema.
        family, config, privacy, model_options: passed on to ``train``.
        train: the training function, called as ``train(data, family, config, schema=...,
            model_options=..., privacy=...)`` and returning a run with ``.model`` and
            ``.privacy`` (e.g. ``trustgen.pipeline.train``). It is an argument so that privacy, a
            stage before the pipeline, does not import the pipeline.
        canaries: total canaries (half become members, by a seeded coin per canary).
    """
    from sklearn.metrics import roc_auc_score

    from trustgen.privacy.accounting import default_delta
    from trustgen.privacy.audit_bounds import one_run_epsilon_lower_bound

    gen = torch.Generator().manual_seed(seed)
    x_can, y_can = make_canaries(schema, canaries, gen)
    member = (torch.rand(canaries, generator=gen) < 0.5).numpy()
    train_data = _with_records(data, schema, x_can[member], None if y_can is None else y_can[member])
    run = train(train_data, family, config, schema=schema, model_options=model_options, privacy=privacy)
    model = run.model
    dev = model.device
    xt = torch.as_tensor(x_can, dtype=torch.float32, device=dev)
    yt = None if y_can is None else torch.as_tensor(y_can, device=dev)
    scores = membership_scores(model, xt, yt, seed=seed)
    delta = run.privacy.delta if run.privacy.is_private else default_delta(len(train_data))
    bound = one_run_epsilon_lower_bound(scores, member, delta, confidence)
    return AuditResult(
        epsilon_lower_bound=float(bound.epsilon_lower_bound),
        claimed_epsilon=float(run.privacy.epsilon) if run.privacy.is_private else None,
        canaries=int(canaries), members=int(member.sum()),
        attack_auc=float(roc_auc_score(member, scores)), guesses=bound.guesses,
        correct_guesses=bound.correct, delta=float(delta), confidence=float(confidence), family=family)
