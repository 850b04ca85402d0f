"""Explanations with the generative model (docs/explain.md).

:func:`~trustgen.explain.counterfactual.counterfactual` searches a run's latent space for the
closest decoded record a classifier assigns to a target class; :func:`~trustgen.explain.clue.clue`
for the closest one a Bayesian classifier is sure about; :func:`~trustgen.explain.attribution.attribute`
explains the difference with Captum.
"""

from trustgen.explain.attribution import Attribution, attribute
from trustgen.explain.classifier import SchemaClassifier, load_classifier
from trustgen.explain.clue import ClueResult, clue
from trustgen.explain.counterfactual import CounterfactualResult, counterfactual

__all__ = ["Attribution", "ClueResult", "CounterfactualResult", "SchemaClassifier", "attribute", "clue",
           "counterfactual", "load_classifier"]
