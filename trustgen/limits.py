"""Bounds on every size a user or a received file can ask for, checked before any work.

Beyond them a command would not finish (10^9 steps is years on a CPU), would allocate more
memory than any machine has, or a value would overflow where it is used (the seed becomes
``seed + 7919 * rank`` in an int64). A leaf: imports nothing, so the CLI's parser can use it
without importing torch. :func:`bounded_number` turns a bound into an argparse ``type``.
"""

import argparse

MAX_STEPS = 10**9
MAX_EPOCHS = 10**6
MAX_BATCH_SIZE = 10**7
MAX_SEED = 2**62
MAX_LR = 10.0
MAX_CANARIES = 10**6  # per run; the white-box audit's memory is bounded on its own (MAX_AUDIT_STEP_BYTES)
MAX_SAMPLES_DRAWN = 10**10  # constrained sampling's budget of draws per batch written
MAX_SAMPLER_STEPS = 100_000  # DDIM steps: more than the largest allowed timesteps visit each one once
MAX_CATEGORIES = 10_000  # per categorical column or image label: one-hot codes are this wide per record
MAX_IMAGE_ENTRIES = 2**24  # channels x height x width of one image (3 x 2048 x 2048 fits)
MAX_AUDIT_STEP_BYTES = 4e9  # memory of one white-box audit step (a dense batch x canaries matrix)
MAX_NUMPY_SEED = 2**32 - 1  # evaluation seeds numpy and scikit-learn, which take 32-bit seeds


def bounded_number(kind: type, low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    """An argparse ``type``: a finite ``kind`` (int or float) in [low, high] (open at ``low``
    or ``high`` where asked), so a bad value is an argparse error (exit 2, one line) before any
    work."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        ok = value == value and (low < value if low_open else low <= value) and (value < high if high_open
                                                                                  else value <= high)
        if not ok:
            fmt = (lambda v: f"{v:,}") if kind is int else (lambda v: f"{v:g}")
            span = f"{'(' if low_open else '['}{fmt(low)}, {fmt(high)}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"must be in {span}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse
