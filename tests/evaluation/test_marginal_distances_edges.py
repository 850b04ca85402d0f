"""The 1-way distances bin a value on an edge as the release counts it."""

import numpy as np
import pandas as pd
import torch

from trustgen.data.encoders import make_encoder
from trustgen.data.schema import NumericColumn, TabularSchema
from trustgen.evaluation.marginal_distances import binned
from trustgen.privacy.marginal_histogram import marginal_layout


def test_a_decoded_edge_value_is_binned_as_the_release_counts_it():
    """2.5 in 0-25 cut in ten, through a float32 encoding and back, decodes to 2.4999998: the
    distances put it in the bin above the edge, as the release's codes do (before: a bin low)."""
    schema = TabularSchema([NumericColumn("years", 0, 25)])
    enc = make_encoder(schema)
    x, _ = enc.transform(pd.DataFrame({"years": np.arange(0, 25.01, 0.5)}))
    x32 = torch.tensor(x, dtype=torch.float32)
    back = enc.inverse_transform(x32.double().numpy())
    assert binned(back, schema)["years"][0].tolist() == marginal_layout(schema)[0].codes(x32).tolist()
