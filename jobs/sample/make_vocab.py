"""Derive ``vocab.json`` (the name vocabulary of the sample generator) from a real playlist slice.

A one-off developer tool, never run by the generator itself: ``vocab.json`` is committed.

    python -m jobs.sample.make_vocab path/to/mackorone_playlist_tracks_2021-05-09.csv

Source: the public ``mackorone/spotify-playlist-archive`` snapshot of 2021-05-09 (MIT licence), parsed into
a CSV of playlist tracks. Only names are kept (no IDs): release noise (" - 2011 Remaster", " (feat. X)") is
stripped from titles because the generator adds its own, with known rates.

The artist-name blocks are checked here so that every name the generator can compose is unique under the
matching key of the cross-reference job (lower-case, accents folded, non-word characters removed): two fake
artists never collide, so the cross-reference ground truth stays exact.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from collections import Counter
from pathlib import Path

from jobs.sample.vocab import fold, norm_key

MAX_TITLES = 3800
MAX_REAL_ARTISTS = 1400
MAX_FIRST = 760
MAX_LAST = 760
MAX_WORDS = 1100
MAX_NON_ASCII_TITLES = 520

_NOISE = re.compile(r"\s*(\((feat|ft|with|from|prod)\.?\s[^)]*\)|\[[^\]]*\]|\s-\s.*)$", re.IGNORECASE)
_TOKEN = re.compile(r"^[^\W\d_]{3,10}$")
_STOPWORD_TEXT = (
    "your for and all what like this with are the that from when into just dont don't have been will "
    "about than then them they there these those only over under some more most much very were where "
    "which while who whom whose why would could should does done each every here hers him his its mine "
    "ours she our out own same such too yours also again once both other feat remix version edit live "
    "remaster remastered radio mix"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def base_title(title: str) -> str:
    """Strip release noise repeatedly: "Song (feat. X) - Radio Edit" -> "Song"."""
    previous = None
    while previous != title:
        previous = title
        title = _NOISE.sub("", title).strip()
    return title


def _unique_by_key(names: list[str], taken: set[str]) -> list[str]:
    out = []
    for name in names:
        key = norm_key(name)
        if key and key not in taken:
            taken.add(key)
            out.append(name)
    return out


def build(csv_path: Path) -> dict[str, list[str]]:
    with csv_path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rnd = random.Random(20210509)

    titles = sorted({base_title(r["track_name"]) for r in rows} - {""})
    titles = [t for t in titles if 2 <= len(t) <= 40 and "\t" not in t and "\n" not in t]
    non_ascii = [t for t in titles if not t.isascii()]
    ascii_only = [t for t in titles if t.isascii()]
    rnd.shuffle(non_ascii)
    rnd.shuffle(ascii_only)
    picked = non_ascii[:MAX_NON_ASCII_TITLES] + ascii_only
    titles = _unique_by_key(picked, set())[:MAX_TITLES]

    artists = sorted({n.strip() for r in rows for n in r["artist_names"].split(";")} - {""})
    two_token = [a.split(" ") for a in artists if len(a.split(" ")) == 2]
    persons = [(f, last) for f, last in two_token if _TOKEN.match(f) and _TOKEN.match(last)]
    firsts = Counter(f for f, _ in persons)
    lasts = Counter(last for _, last in persons)
    first_names = _unique_by_key([w for w, _ in firsts.most_common()], set())[:MAX_FIRST]
    last_names = _unique_by_key([w for w, _ in lasts.most_common()], set())[:MAX_LAST]

    person_keys = {norm_key(w) for w in first_names + last_names}
    word_counts = Counter(
        w.capitalize()
        for t in titles
        for w in t.split(" ")
        if _TOKEN.match(w) and fold(w).isascii() and len(w) >= 4 and w.lower() not in _STOPWORDS
        and norm_key(w) not in person_keys
    )
    words = _unique_by_key([w for w, _ in word_counts.most_common()], set(person_keys))[:MAX_WORDS]

    # Real names that are not "<one> <two>" (those would compete with the composed blocks).
    real = [a for a in artists if len(a.split(" ")) != 2 and len(a) <= 30 and a.isprintable()]
    rnd.shuffle(real)

    # Drop composed-name collisions (concatenation after normalisation can collide), then real names
    # that collide with any composed name.
    first_names, last_names = _dedupe_pairs(first_names, last_names)
    words, _ = _dedupe_pairs(words, words, distinct=True)
    composed = {norm_key(f) + norm_key(x) for f in first_names for x in last_names}
    composed |= {norm_key(a) + norm_key(b) for a in words for b in words if a != b}
    real = _unique_by_key(real, set(composed))[:MAX_REAL_ARTISTS]

    playlists = sorted({r["playlist_name"] for r in rows if "Radio" not in r["playlist_name"]})
    return {
        "titles": titles,
        "real_artists": real,
        "first_names": first_names,
        "last_names": last_names,
        "words": words,
        "playlist_names": playlists,
    }


def _dedupe_pairs(left: list[str], right: list[str], distinct: bool = False) -> tuple[list[str], list[str]]:
    """Remove tokens until every (left, right) pair has a unique normalised concatenation."""
    while True:
        seen: dict[str, tuple[str, str]] = {}
        bad: set[str] = set()
        for a in left:
            for b in right:
                if distinct and a == b:
                    continue
                key = norm_key(a) + norm_key(b)
                if key in seen and seen[key] != (a, b):
                    bad.add(a)
                seen[key] = (a, b)
        if not bad:
            return left, right
        left = [a for a in left if a not in bad]
        if distinct:
            right = left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("vocab.json"))
    args = parser.parse_args()
    vocab = build(args.csv)
    header = {
        "_source": "mackorone/spotify-playlist-archive snapshot 2021-05-09 (MIT licence); names only, "
        "derived by jobs/sample/make_vocab.py",
    }
    args.out.write_text(json.dumps({**header, **vocab}, ensure_ascii=False, separators=(",", ":")) + "\n")
    sizes = {k: len(v) for k, v in vocab.items()}
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {sizes}")


if __name__ == "__main__":
    main()
