"""Cryptographically secure, counter-based randomness for the DP mechanism.

DP-SGD's guarantee assumes the adversary cannot predict the noise or the batch membership.
torch's CPU generator (Mersenne Twister) keeps only the low 32 bits of a seed, so a released
model could be replayed by trying 2^32 seeds (shared/STACK-NOTES.md). Here every draw comes
from a ChaCha20 keystream (the ``cryptography`` package, OpenSSL) under a 256-bit key from the
operating system's entropy.

Draws are addressed, not streamed: the numbers for ``(purpose, step, part)`` come from the
keystream under a nonce derived from those three values. So a step's noise and its batch
depend on the key and the step number only, never on how much earlier steps drew (Poisson
batch sizes are secret and must not shift later draws), resuming needs nothing but the key,
and every rank of a distributed run derives the same noise from the same key.

Gaussians: Box-Muller on 53-bit uniforms. Like every floating-point implementation of DP-SGD
(Opacus's included), the noise is a float32 rounding of a Gaussian, and values beyond about
8.6 standard deviations (probability ~1e-17 per coordinate) are not represented.

Example:
    >>> rng = SecureRandom(key_from_seed(7))  # tests only: a real key comes from new_key()
    >>> a = rng.normal((3,), "noise", step=0)
    >>> bool(torch.equal(a, rng.normal((3,), "noise", step=0))), bool(torch.equal(a, rng.normal((3,), "noise", step=1)))
    (True, False)
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading

import torch

KEY_BYTES = 32
_INV_TWO53 = 2.0 ** -53  # a multiplication by a power of two: exact, the same numbers as a division, 2.6x faster
_MASK53 = (1 << 53) - 1
_CHUNK = 1 << 16  # keystream bytes per cipher call
_ZEROS = bytes(_CHUNK)


def new_key() -> bytes:
    """256 bits from the operating system's entropy."""
    return secrets.token_bytes(KEY_BYTES)


def key_from_seed(seed: int) -> bytes:
    """A key derived from a caller's seed, for tests only (whoever knows the seed knows the key)."""
    return hashlib.sha256(b"trustgen-secret-seed:" + str(int(seed)).encode()).digest()


class SecureRandom:
    """Addressed draws from ChaCha20 under ``key`` (32 bytes). Holds no state but the key."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
            raise ValueError(f"a SecureRandom key is {KEY_BYTES} bytes")
        self.key = bytes(key)
        self._local = threading.local()  # scratch buffers of normal(), one set per thread

    def __repr__(self) -> str:  # never print the key
        return "SecureRandom(<secret key>)"

    def _keystream(self, nbytes: int, purpose: str, step: int, part: int, out: bytearray | None = None) -> bytearray:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

        label = f"{purpose}|{int(step)}|{int(part)}".encode()
        nonce = b"\x00" * 4 + hashlib.sha256(label).digest()[:12]  # 32-bit block counter from 0, 96-bit nonce
        encryptor = Cipher(algorithms.ChaCha20(self.key, nonce), mode=None).encryptor()
        # Written in place, a chunk at a time: the cipher holds Python's lock while it runs, and
        # short holds let the training thread run while the next step's noise is drawn ahead.
        out = bytearray(nbytes) if out is None else out
        view = memoryview(out)
        for start in range(0, nbytes, _CHUNK):
            size = min(_CHUNK, nbytes - start)
            encryptor.update_into(_ZEROS if size == _CHUNK else _ZEROS[:size], view[start:start + size])
        return out

    def words(self, n: int, purpose: str, step: int, part: int = 0) -> torch.Tensor:
        """``n`` uniform 32-bit words as int64 in ``[0, 2^32)``."""
        raw = torch.frombuffer(self._keystream(4 * n, purpose, step, part), dtype=torch.int32)
        return raw.to(torch.int64) & 0xFFFFFFFF

    def uniform(self, n: int, purpose: str, step: int, part: int = 0) -> torch.Tensor:
        """``n`` float64 uniforms in (0, 1) with 53 random bits each (the top 53 of a 64-bit word)."""
        return self._uniform_into(torch.empty(n, dtype=torch.float64), purpose, step, part, bytearray(8 * n))

    def _uniform_into(self, u: torch.Tensor, purpose: str, step: int, part: int, raw: bytearray) -> torch.Tensor:
        w = torch.frombuffer(self._keystream(8 * len(u), purpose, step, part, raw), dtype=torch.int64)
        w.bitwise_right_shift_(11).bitwise_and_(_MASK53)
        return u.copy_(w).add_(0.5).mul_(_INV_TWO53)

    def normal(self, shape: tuple, purpose: str, step: int, part: int = 0) -> torch.Tensor:
        """Standard normal float32 noise of ``shape`` (Box-Muller).

        The float64 scratch space is kept per thread and reused (a DP step draws millions of
        numbers; fresh buffers every step cost page faults that slowed the step beside it); the
        result is always a new tensor."""
        n = math.prod(shape)
        half = (n + 1) // 2
        raw, u, tmp = self._scratch(half)
        self._uniform_into(u, purpose, step, part, raw)
        r = u[:half].log_().mul_(-2.0).sqrt_()
        theta = u[half:].mul_(2.0 * math.pi)
        # Rounded to float32 as each half is written (no float64 concatenation: half the time).
        z = torch.empty(2 * half, dtype=torch.float32)
        z[:half] = torch.cos(theta, out=tmp).mul_(r)
        z[half:] = torch.sin(theta, out=tmp).mul_(r)
        return z[:n].view(shape)

    def _scratch(self, half: int) -> tuple[bytearray, torch.Tensor, torch.Tensor]:
        local = self._local.__dict__
        if local.get("half") != half:
            local.update(half=half, raw=bytearray(16 * half), u=torch.empty(2 * half, dtype=torch.float64),
                         tmp=torch.empty(half, dtype=torch.float64))
        return local["raw"], local["u"], local["tmp"]

    def seed(self, purpose: str, step: int, part: int = 0) -> int:
        """A 63-bit seed derived from the key, e.g. for a torch.Generator that must be
        unpredictable from public values and independent of earlier draws."""
        w = self.words(2, purpose, step, part)
        return int(((w[0] << 31) | (w[1] >> 1)).item())
