"""Which class each sample is drawn for: class names and indices, and draws from the label prior.

A sampling call names its labels as None (draw them from the run's prior), one class (a name,
or an index ``0..k-1``), or one class per sample. :func:`label_source` turns that into a
function ``take(m)`` that hands out the labels of the next ``m`` samples in order, so that a
stream of batches never holds more than a batch of labels.

The prior is drawn exactly as one ``torch.multinomial(prior, n, replacement=True)`` call on the
sampling generator would draw it (what :meth:`~trustgen.sampling.sampler.Sampler.sample` has
always done, and what the regression pins record), without holding all ``n`` labels: see
:class:`PriorDraws`.

Example:
    >>> class_index("1", ("no", "yes"))  # an index typed on a command line
    1
    >>> class_index("yes", ("no", "yes"))
    1
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from trustgen.data.schema import category_index, category_key
from trustgen.errors import ConfigError

LabelTake = Callable[[int], "torch.Tensor | None"]

# Prior labels are drawn in pieces of this many (8 bytes each): bounded memory for any n.
PRIOR_PIECE = 1 << 16


def _as_index(value: Any) -> int | None:
    """``value`` as an integer index if it is one: a Python or NumPy integer, a 0-d tensor or
    array holding one, an integral float, or ASCII decimal digits (as typed in a shell)."""
    if isinstance(value, str):
        s = value.strip()
        # str.isdigit alone accepts "²" or "١", which int() then refuses or reads unexpectedly.
        return int(s) if s.isascii() and s.isdigit() else None
    if hasattr(value, "item") and np.ndim(value) == 0:  # NumPy scalars, 0-d arrays and tensors
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    return None


def class_index(value: Any, classes: Sequence[Any], keys: dict[str, int] | None = None) -> int:
    """The index of the class ``value`` selects among ``classes``.

    A class name comes first (``1``, ``1.0`` and ``"1"`` name the same class, as everywhere in a
    schema); otherwise an integer ``0..k-1`` (or its decimal digits, as a command line passes
    it) is the class index. ``keys`` is ``category_index(classes)``, passed when it is reused.

    Raises:
        ConfigError: for a bool, an index out of range, or a value that names no class.
    """
    if isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"a label is a class name or an index, not a bool (got {value!r})")
    keys = category_index(classes) if keys is None else keys
    k = len(classes)
    if np.ndim(value) == 0 and category_key(value) in keys:
        return keys[category_key(value)]
    index = _as_index(value)
    if index is None:
        raise ConfigError(f"unknown label {value!r}: this run's classes are {list(classes)} "
                          f"(pass one of them, or a class index 0..{k - 1})")
    if not 0 <= index < k:
        raise ConfigError(f"label {value!r} is neither a class name nor a class index: this run has {k} classes "
                          f"{list(classes)}, with indices 0..{k - 1}")
    return index


def label_pieces(n: int, piece: int | None = None) -> Iterator[int]:
    """Sizes of the pieces ``n`` prior labels are drawn in: ``piece`` each and the rest, never a
    piece of 1 unless ``n`` is 1 (``torch.multinomial`` draws a single sample by another
    algorithm, which would change every draw after it). ``piece`` None: :data:`PRIOR_PIECE`."""
    piece = PRIOR_PIECE if piece is None else piece
    if piece < 3:
        raise ValueError(f"prior pieces must hold at least 3 labels, got {piece}")
    full, rest = divmod(n, piece)
    tail = [rest] if rest else []
    if rest == 1 and full:
        full, tail = full - 1, [piece - 1, 2]
    for _ in range(full):
        yield piece
    yield from tail


class PriorDraws:
    """The labels of ``torch.multinomial(prior, n, replacement=True, generator=gen)``, handed out
    in order by :meth:`take` without ever holding all ``n``.

    ``multinomial`` with replacement draws one uniform number per sample, in order, so drawing
    in pieces of two or more gives the same labels and leaves the generator in the same state
    as one call (``tests/sampling/test_streaming.py`` checks both). At construction ``gen`` is
    moved on past all ``n`` draws (the labels are discarded), which is where the noise of the
    first batch starts, as in one call; :meth:`take` draws the same labels again from a copy of
    the generator taken before.
    """

    def __init__(self, prior: torch.Tensor, n: int, gen: torch.Generator, piece: int | None = None) -> None:
        piece = PRIOR_PIECE if piece is None else piece
        self._prior, self._n = prior, n
        self._copy = torch.Generator()
        self._copy.set_state(gen.get_state())
        for size in label_pieces(n, piece):
            torch.multinomial(prior, size, replacement=True, generator=gen)
        self._pieces = label_pieces(n, piece)
        self._left = torch.empty(0, dtype=torch.long)

    def take(self, m: int) -> torch.Tensor:
        parts, have = [self._left], len(self._left)
        while have < m:
            size = next(self._pieces, None)
            if size is None:
                raise ConfigError(f"asked for more than the {self._n} labels drawn")
            parts.append(torch.multinomial(self._prior, size, replacement=True, generator=self._copy))
            have += size
        labels = torch.cat(parts)
        self._left = labels[m:].clone()  # a copy: the view would keep the whole piece alive
        return labels[:m]


def fixed(labels: torch.Tensor) -> LabelTake:
    """``take`` for labels known in advance (``[n]`` class indices), handed out in order."""
    pos = 0

    def take(m: int) -> torch.Tensor:
        nonlocal pos
        out = labels[pos:pos + m]
        pos += m
        return out

    return take


def label_source(n: int, labels: Any, classes: Sequence[Any] | None, prior: Sequence[float] | None,
                 gen: torch.Generator) -> LabelTake:
    """``take(m)`` for the labels of ``n`` samples, checked now (before any sample is drawn).

    Args:
        labels: None (draw from ``prior``, uniform if None), one class (name or index, also as
            a NumPy scalar or 0-d tensor) for every sample, or a sequence of ``n`` classes.
        classes: the run's classes (None or empty: an unconditional model).
        gen: the sampling generator; drawing from the prior moves it past all ``n`` draws now.
    """
    k = len(classes or ())
    if k == 0:
        if labels is not None:
            raise ConfigError("this run's model is unconditional (no label in the schema): do not pass labels")
        return lambda m: None
    if labels is None:
        p = torch.tensor(list(prior) if prior else [1.0 / k] * k, dtype=torch.float64)
        return PriorDraws(p, n, gen).take
    keys = category_index(classes)
    if not isinstance(labels, str) and hasattr(labels, "__iter__") and not hasattr(labels, "__len__"):
        labels = list(labels)  # a generator of labels (np.ndim would take it for one object)
    if isinstance(labels, str) or np.ndim(labels) == 0:
        index = class_index(labels, classes, keys)
        return lambda m: torch.full((m,), index, dtype=torch.long)
    out = torch.tensor([class_index(v, classes, keys) for v in labels], dtype=torch.long)
    if len(out) != n:
        raise ConfigError(f"{len(out)} labels given for {n} samples")
    return fixed(out)


__all__ = ["PRIOR_PIECE", "PriorDraws", "class_index", "fixed", "label_pieces", "label_source"]
