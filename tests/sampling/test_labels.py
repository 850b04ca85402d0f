"""Class names and indices: what a label selects, and what the error says when it selects nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny_runs import make_run
from trustgen.data.schema import CategoricalColumn, NumericColumn, TabularSchema
from trustgen.errors import ConfigError
from trustgen.sampling import Sampler
from trustgen.sampling.labels import class_index

NAMES = ("no", "yes")


@pytest.mark.parametrize("value", ["1", " 1 ", 1, 1.0, np.int64(1), np.float64(1.0), torch.tensor(1), "yes"])
def test_an_index_selects_the_class_when_no_class_has_that_name(value):
    assert class_index(value, NAMES) == 1


@pytest.mark.parametrize("classes, value, index", [
    ((0, 1), "1", 1), ((0, 1), 1, 1), ((0, 1), "0", 0),
    ((1, 2), "2", 1), ((1, 2), 2.0, 1),  # a class name comes first ...
    ((1, 2), "0", 0),  # ... then an index: 0 names no class here
    (("1", "0"), "1", 0), (("1", "0"), 0, 1),  # names written as digits
])
def test_class_names_come_first_then_indices(classes, value, index):
    assert class_index(value, classes) == index


@pytest.mark.parametrize("value, words", [
    ("2", "label '2' is neither a class name nor a class index: this run has 2 classes ['no', 'yes'], with "
          "indices 0..1"),
    (-1, "label -1 is neither a class name nor a class index"),
    ("maybe", "unknown label 'maybe': this run's classes are ['no', 'yes'] (pass one of them, or a class index 0..1)"),
    ("²", "unknown label '²'"),  # str.isdigit says yes, int() says no: not a traceback
    ("1.5", "unknown label '1.5'"),
    (1.5, "unknown label 1.5"),
    (True, "not a bool"),
])
def test_a_label_that_selects_nothing_says_so_correctly(value, words):
    with pytest.raises(ConfigError) as e:
        class_index(value, NAMES)
    assert words in str(e.value)


def test_the_sampler_takes_scalars_sequences_and_generators_of_labels():
    sampler = Sampler(make_run("vae"))
    assert sampler.sample(3, labels="1", seed=0).labels.tolist() == [1, 1, 1]
    assert sampler.sample(3, labels=np.float64(0.0), seed=0).labels.tolist() == [0, 0, 0]
    assert sampler.sample(3, labels=torch.tensor([1, 0, 1]), seed=0).labels.tolist() == [1, 0, 1]
    assert sampler.sample(3, labels=(v for v in ["yes", "no", "1"]), seed=0).labels.tolist() == [1, 0, 1]
    assert set(sampler.sample(3, labels="yes", seed=0).data["label"]) == {"yes"}


def test_integer_classes_of_a_table_are_selected_by_name():
    schema = TabularSchema([NumericColumn("a", 0, 1), CategoricalColumn("label", (0, 1))], label="label",
                           source="declared")
    batch = Sampler(make_run("vae", schema)).sample(4, labels="1", seed=0)
    assert batch.labels.tolist() == [1] * 4 and set(batch.data["label"]) == {1}
