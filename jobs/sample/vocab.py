"""Name vocabulary and vectorised name composition.

``vocab.json`` holds real track titles, artist names and playlist names taken from the public
``mackorone/spotify-playlist-archive`` snapshot of 2021-05-09 (MIT licence), derived by ``make_vocab.py``.

Names are pure functions of an index (artist ``i`` is always called the same for a seed), so any pass can
recompute a name instead of storing it. Composition happens in Arrow compute kernels (``take`` +
element-wise joins), never in per-row Python.

Artist names come from three blocks whose normalised forms are disjoint (checked by ``make_vocab``):
real names (single-token or 3+ tokens, given to the most popular artists), "<First> <Last>" and
"<Word> <Word>". Beyond their capacity (~1.7M names, reached near T = 9M tracks once the MusicBrainz-only
artists are counted) a roman-numeral suffix keeps names unique.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Read as package data, not through ``__file__``: on a cluster the code arrives as the --py-files zip
# (lib/cli.py), where ``vocab.json`` is a zip member and no path on disk.
VOCAB_RESOURCE = ("jobs.sample", "vocab.json")

# Letters NFKD does not decompose; folded like unidecode would.
_SPECIAL_FOLD = str.maketrans({"ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
                               "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "þ": "th", "Þ": "Th", "ð": "d", "Ð": "D",
                               "ı": "i", "’": "'"})
_NON_WORD = re.compile(r"[\W_]+")
_SUFFIXES = ("", " II", " III", " IV", " V", " VI", " VII", " VIII", " IX", " X")


def fold(text: str) -> str:
    """Drop accents (``Beyoncé`` -> ``Beyonce``, ``Sørlie`` -> ``Sorlie``); CJK is left alone."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL_FOLD))
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def norm_key(text: str) -> str:
    """The cross-reference matching key: folded, lower-cased, non-word characters removed."""
    return _NON_WORD.sub("", fold(text).lower())


@dataclass(frozen=True)
class Vocab:
    """Every list twice: as written and accent-folded (same order), as Arrow arrays for ``take``."""

    titles: pa.Array
    titles_folded: pa.Array
    real_artists: pa.Array
    real_artists_folded: pa.Array
    first_names: pa.Array
    first_names_folded: pa.Array
    last_names: pa.Array
    last_names_folded: pa.Array
    words: pa.Array
    words_folded: pa.Array
    playlist_names: pa.Array

    @property
    def artist_capacity(self) -> int:
        """Distinct composed names before roman-numeral suffixes are needed."""
        n_words = len(self.words)
        return len(self.first_names) * len(self.last_names) + n_words * (n_words - 1)


@cache
def load_vocab() -> Vocab:
    package, name = VOCAB_RESOURCE
    raw = json.loads(importlib.resources.files(package).joinpath(name).read_text(encoding="utf-8"))

    def pair(key: str) -> tuple[pa.Array, pa.Array]:
        items = raw[key]
        return pa.array(items, pa.string()), pa.array([fold(x) for x in items], pa.string())

    titles, titles_f = pair("titles")
    real, real_f = pair("real_artists")
    first, first_f = pair("first_names")
    last, last_f = pair("last_names")
    words, words_f = pair("words")
    return Vocab(titles, titles_f, real, real_f, first, first_f, last, last_f, words, words_f,
                 pa.array(raw["playlist_names"], pa.string()))


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays and literals (a null part gives null)."""
    return pc.binary_join_element_wise(*parts, "")


def _affine_perm(index: np.ndarray, modulus: int, salt: int) -> np.ndarray:
    """A bijection on [0, modulus) (modulus < 2**31): spreads consecutive indices over the name space."""
    mult = (0x9E3779B1 + 2 * salt) % modulus or 1
    while math.gcd(mult, modulus) != 1:
        mult += 1
    offset = (salt * 2_654_435_761) % modulus
    return (index.astype(np.int64) * mult + offset) % modulus


def artist_names(index: np.ndarray, rank: np.ndarray | None, seed: int, folded: bool = False) -> pa.Array:
    """Names of artists ``index`` (0-based; indices past the Spotify artists are MusicBrainz-only).

    ``rank`` (popularity rank, 0 = most popular, or None) hands the real names to the head of the
    popularity curve. Returns names as written, or accent-folded when ``folded``.
    """
    v = load_vocab()
    real, first, last, words = (
        (v.real_artists_folded, v.first_names_folded, v.last_names_folded, v.words_folded)
        if folded else (v.real_artists, v.first_names, v.last_names, v.words)
    )
    cap = v.artist_capacity
    index = np.asarray(index, dtype=np.int64)
    generation = index // cap
    p = _affine_perm(index % cap, cap, seed)
    n_first, n_last, n_words = len(first), len(last), len(words)
    persons = n_first * n_last
    is_person = p < persons
    q = np.where(is_person, p, p - persons)
    person = join(first.take(pa.array(q // n_last % n_first)), " ", last.take(pa.array(q % n_last)))
    w1 = np.where(is_person, 0, q // (n_words - 1)) % n_words
    w2 = np.where(is_person, 0, q % (n_words - 1))
    w2 = np.where(w2 >= w1, w2 + 1, w2) % n_words  # skip w1 itself: pairs of two different words
    band = join(words.take(pa.array(w1)), " ", words.take(pa.array(w2)))
    names = pc.if_else(pa.array(is_person), person, band)
    if np.any(generation):
        suffix = pa.array(_SUFFIXES, pa.string()).take(pa.array(np.minimum(generation, len(_SUFFIXES) - 1)))
        names = join(names, suffix)
    if rank is not None:
        rank = np.asarray(rank)
        use_real = rank < len(real)
        if use_real.any():
            names = pc.if_else(pa.array(use_real), real.take(pa.array(np.where(use_real, rank, 0))), names)
    return names


def person_sort_names(index: np.ndarray, rank: np.ndarray | None, seed: int) -> pa.Array:
    """MusicBrainz ``sort_name``: "Last, First" for composed person names, the name itself otherwise."""
    v = load_vocab()
    cap = v.artist_capacity
    index = np.asarray(index, dtype=np.int64)
    p = _affine_perm(index % cap, cap, seed)
    n_last = len(v.last_names)
    is_person = p < len(v.first_names) * n_last
    if rank is not None:
        is_person &= np.asarray(rank) >= len(v.real_artists)
    q = np.where(is_person, p, 0)
    sort = join(v.last_names.take(pa.array(q % n_last)), ", ",
                v.first_names.take(pa.array(q // n_last % len(v.first_names))))
    names = artist_names(index, rank, seed)
    if np.any(index >= cap):
        return names  # suffixed names: keep it simple
    return pc.if_else(pa.array(is_person), sort, names)
