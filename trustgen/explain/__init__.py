"""Explanations with the generative model: on-manifold counterfactuals (docs: see the module).

:func:`~trustgen.explain.counterfactual.counterfactual` searches a run's latent space for the
closest decoded record a classifier assigns to a target class.
"""

from trustgen.explain.counterfactual import CounterfactualResult, counterfactual

__all__ = ["CounterfactualResult", "counterfactual"]
