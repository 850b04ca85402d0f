"""Errors that teach: every trustgen failure says what is wrong, why, and how to fix it.

All library errors derive from :class:`TrustgenError` (a ``ValueError``), so a caller can catch
one type. The CLI turns any of them into exit code 2 and a one-line reason.
"""


class TrustgenError(ValueError):
    """Base class of every error trustgen raises on purpose."""


class SchemaError(TrustgenError):
    """A schema is malformed, or data does not match the schema it is declared with."""


class DataError(TrustgenError):
    """Input data is unusable: empty, NaN/inf, outside the declared domain, or the wrong shape."""


class ConfigError(TrustgenError):
    """A setting is invalid (unknown model family, non-positive epochs, unknown device...)."""


class RunError(TrustgenError):
    """A run directory is missing, incomplete or inconsistent."""


class PrivacyError(TrustgenError):
    """A privacy setting or guarantee cannot be honoured (epsilon <= 0, delta >= 1/n, budget exceeded)."""


class TrainingError(TrustgenError):
    """Training cannot go on (the loss diverged to NaN/inf)."""


class ConstraintError(TrustgenError):
    """Constraints cannot be met: they contradict each other, or the sampling budget ran out
    before enough samples satisfied them (no sample that breaks a hard constraint is returned)."""
