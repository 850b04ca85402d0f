"""Explanations with the generative model: on-manifold counterfactuals (docs: see the module).

:func:`~trustgen.explain.counterfactual.counterfactual` searches a run's latent space for the
closest decoded record a classifier assigns to a target class;
:func:`~trustgen.explain.attribution.attribute` explains the difference with Captum.
"""

from trustgen.explain.attribution import Attribution, attribute
from trustgen.explain.classifier import SchemaClassifier
from trustgen.explain.counterfactual import CounterfactualResult, counterfactual

__all__ = ["Attribution", "CounterfactualResult", "SchemaClassifier", "attribute", "counterfactual"]
