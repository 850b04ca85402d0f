"""Built-in datasets that ship inside installed packages (no download at run time).

Each comes with a *declared* schema: bounds from public documentation of the dataset or from
the physical meaning of a column, never computed from the rows at load time.
"""

from __future__ import annotations

import math
import re
from typing import Callable

import numpy as np
import pandas as pd

from trustgen.data.encoders import Data, ImageData
from trustgen.data.schema import CategoricalColumn, ImageSchema, NumericColumn, Schema, TabularSchema
from trustgen.errors import ConfigError


def round_up_bound(v: float) -> float:
    """Round ``v`` up to two significant digits, so a bound is a public round number."""
    if v <= 0:
        return 0.0
    e = 10 ** (math.floor(math.log10(v)) - 1)
    return math.ceil(v / e) * e


def load_digits() -> tuple[Data, Schema]:
    """scikit-learn's 1,797 8x8 handwritten digits; pixels are counts 0..16 (public format)."""
    from sklearn.datasets import load_digits as sk

    d = sk()
    x = d.images.astype(np.float64)[:, None]  # N x 1 x 8 x 8
    schema = ImageSchema(1, 8, 8, 0.0, 16.0, tuple(str(i) for i in range(10)))
    return ImageData(x, d.target.astype(np.int64)), schema


def load_breast_cancer() -> tuple[Data, Schema]:
    """Wisconsin diagnostic breast cancer (569 rows, 30 measurements, malignant/benign).

    Bounds: every measurement is non-negative (lower bound 0); the upper bound is the maximum
    printed in the dataset's published description (UCI / scikit-learn DESCR), widened by 10%
    and rounded up to two significant digits.
    """
    from sklearn.datasets import load_breast_cancer as sk

    d = sk()
    published = [float(m) for m in re.findall(r":\s+[\d.]+\s+([\d.]+)\s*$", d.DESCR, re.M)]
    if len(published) != 30:  # the DESCR format changed: refuse rather than guess
        raise RuntimeError("could not read the published feature ranges of breast_cancer")
    cols = [NumericColumn(n, 0.0, round_up_bound(1.1 * hi)) for n, hi in zip(d.feature_names, published)]
    cols.append(CategoricalColumn("diagnosis", ("malignant", "benign")))
    df = pd.DataFrame(d.data, columns=list(d.feature_names))
    df["diagnosis"] = [("malignant", "benign")[t] for t in d.target]
    return df, TabularSchema(cols, label="diagnosis")


def load_randhie() -> tuple[Data, Schema]:
    """RAND health-insurance experiment (20,190 person-years; statsmodels, optional).

    Bounds follow the codebook: ``lncoins = ln(1 + coinsurance %)`` so at most ln(101); visit
    counts and log payments get generous public caps. Labelled by ``idp`` (individual
    deductible plan, yes/no).
    """
    try:
        from statsmodels.datasets import randhie
    except ImportError as e:
        raise ConfigError(
            "the randhie dataset needs statsmodels: pip install 'trustgen[randhie]'"
        ) from e
    df = randhie.load_pandas().data.copy()
    binary = ("0", "1")
    cols = [
        NumericColumn("mdvis", 0, 100, integer=True),
        NumericColumn("lncoins", 0.0, 4.62),
        CategoricalColumn("idp", binary),
        NumericColumn("lpi", 0.0, 8.0),
        NumericColumn("fmde", 0.0, 10.0),
        NumericColumn("physlm", 0.0, 1.0),
        NumericColumn("disea", 0.0, 70.0),
        CategoricalColumn("hlthg", binary),
        CategoricalColumn("hlthf", binary),
        CategoricalColumn("hlthp", binary),
    ]
    return df, TabularSchema(cols, label="idp")


BUILTIN: dict[str, Callable[[], tuple[Data, Schema]]] = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "randhie": load_randhie,
}
