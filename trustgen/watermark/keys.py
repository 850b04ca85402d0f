"""Watermark keys: 256 secret bits from the operating system, kept in an owner-only file.

A key file is JSON (``{"kind": "trustgen-watermark-key", "version": 1, "secret": 64 hex digits,
"key_id": 16 hex digits}``), written ``0600``. The ``key_id`` is a hash of the secret: it may
travel with samples and runs (a :class:`~trustgen.sampling.sampler.SampleBatch` carries it) and
names the key without revealing it. The secret itself is never written anywhere else.

Every pseudorandom pattern a watermark embeds comes from :meth:`WatermarkKey.uniform`: ChaCha20
under the key, addressed by (purpose, index) (:class:`~trustgen.privacy.secure_random.SecureRandom`),
never from the public sampling seed.

Example:
    >>> key = WatermarkKey.generate()
    >>> len(key.key_id), key.uniform(3, "demo", 0).shape
    (16, (3,))
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trustgen.errors import ConfigError
from trustgen.io import atomic_write, read_json
from trustgen.privacy.secure_random import KEY_BYTES, SecureRandom, key_from_seed, new_key

KEY_KIND = "trustgen-watermark-key"
KEY_VERSION = 1
KEY_FIELDS = ("kind", "version", "secret", "key_id")


class WatermarkKeyError(ConfigError):
    """A key file is missing, unreadable, malformed, or of another kind."""


@dataclass(frozen=True)
class WatermarkKey:
    """A secret watermark key. ``repr`` never shows the secret."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) != KEY_BYTES:
            raise WatermarkKeyError(f"a watermark key is {KEY_BYTES} secret bytes")

    @classmethod
    def generate(cls) -> "WatermarkKey":
        """A new key from the operating system's entropy."""
        return cls(new_key())

    @classmethod
    def from_seed(cls, seed: int) -> "WatermarkKey":
        """A key derived from a seed: for tests and benchmarks only (whoever knows the seed has the key)."""
        return cls(key_from_seed(seed))

    @property
    def key_id(self) -> str:
        """16 hex digits naming the key (a hash of the secret; safe to publish)."""
        return hashlib.sha256(b"trustgen-watermark-key-id\x00" + self.secret).hexdigest()[:16]

    def uniform(self, n: int, purpose: str, index: int = 0) -> np.ndarray:
        """``n`` keyed uniforms in (0, 1) for ``(purpose, index)``: the same numbers every time,
        unpredictable without the key, independent across purposes and indices."""
        return SecureRandom(self.secret).uniform(n, f"watermark|{purpose}", index).numpy()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the key file (owner-only). An existing file is never replaced: losing a key
        loses the ability to detect everything watermarked with it."""
        p = Path(path)
        if p.exists() or p.is_symlink():
            raise WatermarkKeyError(f"{str(p)!r} already exists: a key is never overwritten (everything "
                                    "watermarked with it could no longer be detected); choose another path")
        body = {"kind": KEY_KIND, "version": KEY_VERSION, "secret": self.secret.hex(), "key_id": self.key_id}
        atomic_write(p, lambda f: f.write(json.dumps(body, indent=2) + "\n"), "w", private=True)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike) -> "WatermarkKey":
        """Read a key file written by :meth:`save` (or ``trustgen keygen``)."""
        hint = "make one with `trustgen keygen --out KEY`"
        obj = read_json(path, "watermark key file", WatermarkKeyError, hint, expect=dict)
        unknown = sorted(set(obj) - set(KEY_FIELDS))
        if obj.get("kind") != KEY_KIND:
            raise WatermarkKeyError(f"{str(path)!r} is not a trustgen watermark key (its \"kind\" is "
                                    f"{obj.get('kind')!r}, not {KEY_KIND!r}); {hint}")
        if obj.get("version") != KEY_VERSION or unknown:
            raise WatermarkKeyError(f"{str(path)!r} is a watermark key of another version or carries unknown "
                                    f"fields {unknown}: this trustgen reads version {KEY_VERSION}")
        secret = obj.get("secret")
        if not (isinstance(secret, str) and len(secret) == 2 * KEY_BYTES
                and all(c in "0123456789abcdef" for c in secret)):
            raise WatermarkKeyError(f"watermark key {str(path)!r} is damaged: \"secret\" must be "
                                    f"{2 * KEY_BYTES} lower-case hex digits")
        key = cls(bytes.fromhex(secret))
        if obj.get("key_id") != key.key_id:
            raise WatermarkKeyError(f"watermark key {str(path)!r} is damaged: its key_id does not match its secret")
        return key
