"""Deterministic identifiers and random streams.

Every identifier is a pure function of ``(seed, namespace, index)``: a track's base62 ID can be recomputed
from its rowid in any pass, so nothing keeps an index → ID map in memory. The first 64 bits go through a
bijective mixer, which makes IDs unique across all namespaces by construction (no collision check needed).
"""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa

BASE62 = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)

# Namespaces (< 256). Changing a number changes every ID of that kind.
NS_TRACK = 1
NS_ARTIST = 2
NS_ALBUM = 3
NS_PLAYLIST = 4
NS_GHOST = 5
NS_EPISODE = 6
NS_MALFORMED = 7
NS_MB_RECORDING = 8
NS_MB_ARTIST = 9
NS_MB_CREDIT = 10
NS_SNAPSHOT = 11
NS_USER = 12
NS_PREVIEW = 13
NS_MISC = 14

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijection on uint64 with good avalanche (wrapping arithmetic)."""
    z = np.asarray(x, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def _seed_key(seed: int, salt: int) -> np.uint64:
    return mix64(np.array([(seed * 0x9E3779B97F4A7C15 + salt) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]


def hash64(seed: int, namespace: int, index: np.ndarray) -> np.ndarray:
    """Unique (per seed) 64-bit value for each ``(namespace, index)``, index < 2**56."""
    idx = np.asarray(index, dtype=np.uint64)
    return mix64(((np.uint64(namespace) << np.uint64(56)) | idx) ^ _seed_key(seed, 1))


def stream(seed: int, name: str, chunk: int = 0) -> np.random.Generator:
    """The random stream of one chunk of one table: independent of how chunks are scheduled."""
    return np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32, zlib.crc32(name.encode()), chunk])


def fixed_width_strings(chars: np.ndarray) -> pa.Array:
    """An (n, w) uint8 matrix of ASCII codes → Arrow string array of n strings of width w (zero copy)."""
    chars = np.ascontiguousarray(chars, dtype=np.uint8)
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())])


def _base62_digits(values: np.ndarray, width: int) -> np.ndarray:
    out = np.empty((len(values), width), dtype=np.uint8)
    v = values.astype(np.uint64).copy()
    for pos in range(width - 1, -1, -1):
        out[:, pos] = BASE62[(v % np.uint64(62)).astype(np.intp)]
        v //= np.uint64(62)
    return out


def base62_ids(seed: int, namespace: int, index: np.ndarray) -> pa.Array:
    """22-character Spotify-style IDs. Unique per (namespace, index): the first 11 characters encode the
    full 64-bit bijective hash (62**11 > 2**64)."""
    hi = hash64(seed, namespace, index)
    lo = mix64(hi ^ _seed_key(seed, 2))
    return fixed_width_strings(np.hstack([_base62_digits(hi, 11), _base62_digits(lo, 11)]))


def base62_strings(seed: int, namespace: int, index: np.ndarray, width: int) -> pa.Array:
    """Base62 strings of any width (not guaranteed unique): snapshot IDs, user names, hashes."""
    parts = []
    h = hash64(seed, namespace, index)
    while sum(p.shape[1] for p in parts) < width:
        parts.append(_base62_digits(h % np.uint64(62**10), 10))
        h = mix64(h ^ _seed_key(seed, 3))
    return fixed_width_strings(np.hstack(parts)[:, :width])


def hex_strings(seed: int, namespace: int, index: np.ndarray, width: int) -> pa.Array:
    """Lower-case hex strings (preview URL hashes)."""
    parts = []
    h = hash64(seed, namespace, index)
    while sum(p.shape[1] for p in parts) < width:
        parts.append(_hex_digits(h, 16))
        h = mix64(h ^ _seed_key(seed, 4))
    return fixed_width_strings(np.hstack(parts)[:, :width])


def _hex_digits(values: np.ndarray, width: int) -> np.ndarray:
    shifts = np.arange(4 * (width - 1), -1, -4, dtype=np.uint64)
    nibbles = (values[:, None] >> shifts[None, :]) & np.uint64(0xF)
    return HEX[nibbles.astype(np.intp)]


def uuids(seed: int, namespace: int, index: np.ndarray) -> pa.Array:
    """Lower-case version-4 style UUIDs (MusicBrainz MBIDs), unique per (namespace, index)."""
    hi = hash64(seed, namespace, index)
    lo = mix64(hi ^ _seed_key(seed, 5))
    hi = (hi & np.uint64(0xFFFFFFFFFFFF0FFF)) | np.uint64(0x4000)  # version nibble: 4
    lo = (lo & np.uint64(0x3FFFFFFFFFFFFFFF)) | np.uint64(0x8000000000000000)  # RFC 4122 variant
    digits = np.hstack([_hex_digits(hi, 16), _hex_digits(lo, 16)])
    dash = np.full((len(digits), 1), ord("-"), dtype=np.uint8)
    return fixed_width_strings(
        np.hstack([digits[:, :8], dash, digits[:, 8:12], dash, digits[:, 12:16], dash, digits[:, 16:20], dash,
                   digits[:, 20:]])
    )
