"""The logical catalogue: artists, albums, tracks and audio features, chunk by chunk, plus shared helpers.

Chunks come out as Arrow tables in the *real* release layout (names and column order of
``real-dump-layout.md``); ``spec_layout`` converts them, ``mbdump`` plants MusicBrainz rows from them.
Playlists live in ``playlists``, the rows ingest must quarantine in ``malformed``.

Memory: ``Plan`` holds only O(T) small numpy arrays (per artist: genre, popularity rank; per album: start,
type, artist, year; per track: popularity and two popularity orderings for playlist sampling). Every chunk
draws from its own stream ``(seed, table, chunk)``, so its content does not depend on the chunk schedule.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.sample import ids
from jobs.sample import rates as R
from jobs.sample.vocab import artist_names, join, load_vocab

N_GENRES = len(R.GENRES)
GENRE_WEIGHTS = np.array([g.weight for g in R.GENRES]) / sum(g.weight for g in R.GENRES)
TAGS = pa.array([t for g in R.GENRES for t in g.tags], pa.string())
TAG_OFFSETS = np.cumsum([0, *(len(g.tags) for g in R.GENRES)])

AVAILABLE_MARKETS = (
    "AD,AE,AR,AT,AU,BE,BG,BO,BR,CA,CH,CL,CO,CR,CY,CZ,DE,DK,DO,EC,EE,EG,ES,FI,FR,GB,GR,GT,HK,HN,HU,ID,IE,IL,IN,IS,"
    "IT,JP,KR,LT,LU,LV,MA,MT,MX,MY,NI,NL,NO,NZ,PA,PE,PH,PL,PT,PY,RO,SA,SE,SG,SK,SV,TH,TR,TW,US,UY,VN,ZA",
    "US,CA",
    "GB,IE",
    "AT,BE,CH,DE,DK,ES,FI,FR,IT,NL,NO,PT,SE",
    "",
)
MARKET_PROBS = (0.82, 0.06, 0.04, 0.05, 0.03)

LABEL_SUFFIXES = pa.array([" Records", " Music", " Recordings", " Entertainment", " Sound", " Label Group"])
RELEASE_NOISE = (" - {y} Remaster", " (Remastered {y})", " - Live", " - Radio Edit")  # kinds 0-3, see track_chunk
COMPILATION_FORMS = pa.array(["Best of ", "The Sound of ", "Essential ", "Ultimate "])


def malformed_count(tracks: int) -> int:
    """Rows per malformed reason: a fixed fraction, at least 3 once T >= 1000 (1 below)."""
    minimum = R.MALFORMED_MIN if tracks >= R.MALFORMED_MIN_TRACKS else 1
    return max(minimum, round(tracks * R.MALFORMED_RATE))


def zipf_index(u: np.ndarray, n: np.ndarray | int, s: float = R.ZIPF_EXPONENT) -> np.ndarray:
    """Inverse CDF of the continuous Zipf law ∝ x**-s on [1, n+1): vectorised rank sampling, 0-based."""
    n = np.asarray(n, dtype=np.float64)
    a = 1.0 - s
    x = ((np.power(n + 1.0, a) - 1.0) * u + 1.0) ** (1.0 / a)
    return np.minimum(np.floor(x).astype(np.int64) - 1, np.maximum(n.astype(np.int64) - 1, 0))


def fetched_at_ms(rng: np.random.Generator, n: int) -> np.ndarray:
    return R.FETCHED_AT_MS + rng.integers(0, R.FETCH_WINDOW_MS, n)


def int_strings(values: np.ndarray, width: int = 0) -> pa.Array:
    """Integers → decimal strings, zero-padded to ``width``."""
    out = pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())
    return pc.utf8_lpad(out, width, "0") if width else out


def pick(choices: pa.Array, index: np.ndarray) -> pa.Array:
    return choices.take(pa.array(np.asarray(index, dtype=np.int64)))


def scatter(values: pa.Array, where: np.ndarray) -> pa.Array:
    """Spread ``values`` (one per True in ``where``) over a full-length array, null elsewhere."""
    positions = np.cumsum(where) - 1
    return values.take(pa.array(np.where(where, positions, 0), mask=~where))


def where_rows(mask: np.ndarray, build: Callable[[np.ndarray], pa.Array],
               default: pa.Array | pa.Scalar | None) -> pa.Array:
    """``build(rows)`` evaluated on the masked rows only (string work where it is needed), ``default``
    (an aligned array, a scalar, or None for NULL) elsewhere."""
    rows = np.flatnonzero(mask)
    values = scatter(build(rows), mask)
    return values if default is None else pc.if_else(pa.array(mask), values, default)


def json_string_lists(offsets: np.ndarray, values: pa.Array) -> pa.Array:
    """``["a","b"]`` per row from a flat value array and row offsets (values hold no quotes)."""
    lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)
    inner = pc.binary_join(lists, '","')
    empty = pc.equal(pc.list_value_length(lists), 0)
    return pc.if_else(empty, pa.scalar("[]"), join('["', inner, '"]'))


@dataclass
class Plan:
    """Global, O(T) small arrays every pass needs. Indices are 0-based; rowid = index + 1."""

    seed: int
    tracks: int
    artists: int
    playlists: int
    artist_genre: np.ndarray  # int8[A]
    artist_rank: np.ndarray  # int32[A], 0 = most popular
    artist_pop: np.ndarray  # int8[A]
    genre_artists: np.ndarray  # int32: artist indices grouped by genre
    genre_artist_off: np.ndarray  # int64[G+1]
    album_start: np.ndarray  # int64[n_albums+1], first track index of each album; last = T
    album_type: np.ndarray  # int8
    album_artist: np.ndarray  # int32
    album_year: np.ndarray  # int16
    track_pop: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))  # int8[T]
    by_genre: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))  # tracks by genre, pop desc
    genre_track_off: np.ndarray = field(default_factory=lambda: np.zeros(N_GENRES + 1, np.int64))
    by_pop: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))  # tracks by popularity desc
    n_malformed: int = 0

    @property
    def n_albums(self) -> int:
        return len(self.album_type)

    @property
    def ghost_pool(self) -> int:
        return max(4, int(self.tracks * R.GHOST_POOL_PER_TRACK))

    @property
    def episode_pool(self) -> int:
        return max(4, int(self.tracks * R.EPISODE_POOL_PER_TRACK))

    @property
    def track_chunks(self) -> int:
        return math.ceil(self.tracks / R.TRACK_CHUNK)

    @property
    def artist_chunks(self) -> int:
        return math.ceil(self.artists / R.ARTIST_CHUNK)

    @property
    def playlist_chunks(self) -> int:
        return math.ceil(self.playlists / R.PLAYLIST_CHUNK)

    def album_genre(self, album: np.ndarray) -> np.ndarray:
        return self.artist_genre[self.album_artist[album]]


def build_plan(seed: int, tracks: int, playlists: int) -> Plan:
    """Draw artists and albums, then every track's popularity and the playlist sampling orders."""
    n_artists = max(2, math.ceil(tracks * R.ARTISTS_PER_TRACK))
    rng = ids.stream(seed, "artists-plan")
    genre = rng.choice(N_GENRES, n_artists, p=GENRE_WEIGHTS).astype(np.int8)
    rank = rng.permutation(n_artists).astype(np.int32)
    q = (rank + 0.5) / n_artists
    pop = np.rint(100.0 * (1.0 - q) ** R.ARTIST_POP_EXPONENT).astype(np.int8)
    order = np.argsort(genre, kind="stable").astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(genre, minlength=N_GENRES))]).astype(np.int64)

    starts, types = _album_sizes(seed, tracks)
    n_albums = len(types)
    rng = ids.stream(seed, "album-artists")
    weights = 1.0 + (pop / R.ALBUM_WEIGHT_POP_SCALE) ** 2
    first = rng.permutation(n_artists)[: min(n_artists, n_albums)]
    extra = rng.choice(n_artists, n_albums - len(first), p=weights / weights.sum())
    album_artist = rng.permutation(np.concatenate([first, extra])).astype(np.int32)
    ages = np.array([g.age_years for g in R.GENRES])[genre[album_artist]]
    year = np.clip(R.NEWEST_YEAR - np.floor(rng.exponential(ages)), R.OLDEST_YEAR, R.NEWEST_YEAR).astype(np.int16)

    plan = Plan(seed, tracks, n_artists, playlists, genre, rank, pop, order, offsets, starts, types, album_artist,
                year, n_malformed=malformed_count(tracks))
    plan.track_pop = np.concatenate([track_core(plan, k)[2] for k in range(plan.track_chunks)])
    _popularity_orders(plan)
    return plan


def _album_sizes(seed: int, tracks: int) -> tuple[np.ndarray, np.ndarray]:
    """Album types and sizes, drawn in fixed blocks until they hold exactly ``tracks`` tracks."""
    sizes, types, total, block = [], [], 0, 0
    while total < tracks:
        rng = ids.stream(seed, "album-sizes", block)
        t = rng.choice(3, R.ALBUM_DRAW_CHUNK, p=R.ALBUM_TYPE_PROBS).astype(np.int8)
        s = np.ones(R.ALBUM_DRAW_CHUNK, dtype=np.int64)
        s[t == R.ALBUM] = rng.integers(R.ALBUM_TRACKS[0], R.ALBUM_TRACKS[1] + 1, int((t == R.ALBUM).sum()))
        comp = t == R.COMPILATION
        s[comp] = rng.integers(R.COMPILATION_TRACKS[0], R.COMPILATION_TRACKS[1] + 1, int(comp.sum()))
        sizes.append(s)
        types.append(t)
        total += int(s.sum())
        block += 1
    size, kind = np.concatenate(sizes), np.concatenate(types)
    ends = np.cumsum(size)
    n = int(np.searchsorted(ends, tracks)) + 1
    size, kind = size[:n], kind[:n]
    size[-1] -= int(ends[n - 1]) - tracks
    kind[-1] = R.SINGLE if size[-1] == 1 else kind[-1]
    return np.concatenate([[0], np.cumsum(size)]).astype(np.int64), kind


def chunk_bounds(total: int, size: int, k: int) -> tuple[int, int]:
    return k * size, min((k + 1) * size, total)


def track_core(plan: Plan, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(album, primary artist, popularity) of track chunk ``k``: recomputed identically by every pass."""
    s, e = chunk_bounds(plan.tracks, R.TRACK_CHUNK, k)
    rng = ids.stream(plan.seed, "track-core", k)
    idx = np.arange(s, e)
    album = np.searchsorted(plan.album_start, idx, side="right") - 1
    primary = plan.album_artist[album].copy()
    comp = plan.album_type[album] == R.COMPILATION
    u = rng.random(e - s)
    g = plan.album_genre(album)
    lo, cnt = plan.genre_artist_off[g], np.diff(plan.genre_artist_off)[g]
    various = plan.genre_artists[lo + np.floor(u * cnt).astype(np.int64)]
    primary = np.where(comp, various, primary).astype(np.int32)
    factor = rng.uniform(*R.TRACK_POP_FACTOR, e - s)
    noise = rng.normal(0.0, R.TRACK_POP_NOISE, e - s)
    pop = np.clip(np.rint(plan.artist_pop[primary] * factor + noise), 0, 100).astype(np.int8)
    return album, primary, pop


def _popularity_orders(plan: Plan) -> None:
    """Tracks ordered by popularity (ties broken by a hash), overall and within each genre: rank r in
    these arrays is what the playlist Zipf sampler draws."""
    key = (ids.hash64(plan.seed, ids.NS_MISC, np.arange(plan.tracks)) >> np.uint64(40)).view(np.int64)
    key |= (100 - plan.track_pop.astype(np.int64)) << 24  # one int64 key, built in place (10M tracks: 80 MB)
    plan.by_pop = np.argsort(key, kind="stable").astype(np.int32)
    genre = np.repeat(plan.album_genre(np.arange(plan.n_albums)), np.diff(plan.album_start))
    plan.genre_track_off = np.concatenate([[0], np.cumsum(np.bincount(genre, minlength=N_GENRES))]).astype(np.int64)
    key |= genre.astype(np.int64) << 32
    del genre
    plan.by_genre = np.argsort(key, kind="stable").astype(np.int32)


# --------------------------------------------------------------------------------------------- artists


def artist_chunk(plan: Plan, k: int) -> tuple[pa.Table, pa.Table, pa.Array]:
    """(artists, artist_genres, genres JSON per artist for the spec layout) of artist chunk ``k``."""
    s, e = chunk_bounds(plan.artists, R.ARTIST_CHUNK, k)
    n = e - s
    rng = ids.stream(plan.seed, "artists", k)
    idx = np.arange(s, e)
    pop = plan.artist_pop[idx].astype(np.int64)
    followers = np.rint(10 ** (1.0 + R.FOLLOWERS_PER_POP * pop + rng.normal(0, 0.6, n))).astype(np.int64)
    artists = pa.table({
        "rowid": idx + 1,
        "id": ids.base62_ids(plan.seed, ids.NS_ARTIST, idx),
        "fetched_at": fetched_at_ms(rng, n),
        "name": artist_names(idx, plan.artist_rank[idx], plan.seed),
        "followers_total": followers,
        "popularity": pop,
    })
    n_tags = rng.choice(len(R.ARTIST_GENRE_COUNT_PROBS), n, p=R.ARTIST_GENRE_COUNT_PROBS)
    g = plan.artist_genre[idx].astype(np.int64)
    width = int(np.diff(TAG_OFFSETS).max())
    keys = rng.random((n, width))
    keys[np.arange(width)[None, :] >= np.diff(TAG_OFFSETS)[g][:, None]] = 2.0
    slots = np.argsort(keys, axis=1)
    take = np.arange(width)[None, :] < n_tags[:, None]
    tag_index = (TAG_OFFSETS[g][:, None] + slots)[take]
    tags = pick(TAGS, tag_index)
    genres = pa.table({"artist_rowid": np.repeat(idx + 1, n_tags), "genre": tags})
    offsets = np.concatenate([[0], np.cumsum(n_tags)])
    return artists, genres, json_string_lists(offsets, tags)


# ---------------------------------------------------------------------------------------------- tracks


@dataclass
class TrackChunk:
    """One chunk of tracks with everything derived from them, plus what MusicBrainz planting needs."""

    tracks: pa.Table
    track_artists: pa.Table
    albums: pa.Table
    artist_albums: pa.Table
    audio_features: pa.Table
    # For mbdump (aligned with tracks):
    primary: np.ndarray
    artist_matrix: np.ndarray  # (n, 3) artist indices, -1 = none
    base_title: pa.Array
    base_title_folded: pa.Array
    plant: np.ndarray  # index into rates.PLANT_NAMES
    variation: np.ndarray  # index into rates.METADATA_VARIATIONS
    isrc_canonical: pa.Array
    stats: Counter


def _isrc_codes(countries: tuple[str, ...], country: np.ndarray, registrant: np.ndarray, year: np.ndarray,
                designation: np.ndarray) -> pa.Array:
    """Canonical ISRCs CC XXX YY NNNNN as a (n, 12) byte matrix → strings."""
    cc = np.frombuffer("".join(countries).encode(), dtype=np.uint8).reshape(-1, 2)
    alnum = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
    digits = np.frombuffer(b"0123456789", dtype=np.uint8)
    out = np.empty((len(country), 12), dtype=np.uint8)
    out[:, 0:2] = cc[country]
    for pos, div in ((2, 36 * 36), (3, 36), (4, 1)):
        out[:, pos] = alnum[(registrant // div) % 36]
    out[:, 5] = digits[(year // 10) % 10]
    out[:, 6] = digits[year % 10]
    for pos, div in enumerate((10_000, 1_000, 100, 10, 1)):
        out[:, 7 + pos] = digits[(designation // div) % 10]
    return ids.fixed_width_strings(out)


def spotify_isrcs(plan: Plan, primary: np.ndarray, ordinal: np.ndarray, year: np.ndarray) -> pa.Array:
    """Unique per track: (country, registrant) is a bijection of the primary artist, the designation code
    counts that artist's tracks (unique while an artist has < 50,000 tracks and T < ~37M)."""
    space = len(R.ISRC_COUNTRIES) * 36**3
    generation = primary.astype(np.int64) // space
    reg = (primary.astype(np.int64) % space * 1_000_003 + 12_345) % space
    h = ids.hash64(plan.seed, ids.NS_MISC, primary.astype(np.int64) + (1 << 40))
    offset = (h % np.uint64(100_000)).astype(np.int64)
    designation = (offset + ordinal + generation * 50_000) % 100_000
    return _isrc_codes(R.ISRC_COUNTRIES, reg // 36**3, reg % 36**3, year.astype(np.int64) % 100, designation)


def filler_isrcs(seed: int, index: np.ndarray) -> pa.Array:
    """ISRCs only MusicBrainz holds (countries Spotify's never use here): unique per ``index``."""
    index = np.asarray(index, dtype=np.int64)
    space = len(R.FILLER_ISRC_COUNTRIES) * 36**3
    reg = (index // 100_000 * 7_919 + 17) % space
    year = (ids.hash64(seed, ids.NS_MISC, index + (2 << 40)) % np.uint64(40)).astype(np.int64) + 85
    return _isrc_codes(R.FILLER_ISRC_COUNTRIES, reg // 36**3, reg % 36**3, year % 100, index % 100_000)


def _isrc_variants(canonical: pa.Array, kind: np.ndarray) -> pa.Array:
    """How a sloppy label writes an ISRC: 0 lower-case, 1 "US-ABC-12-34567", 2 "US ABC 12 34567",
    3 lower-case and hyphenated."""
    def spaced(sep: str) -> pa.Array:
        return join(pc.utf8_slice_codeunits(canonical, 0, 2), sep, pc.utf8_slice_codeunits(canonical, 2, 5), sep,
                    pc.utf8_slice_codeunits(canonical, 5, 7), sep, pc.utf8_slice_codeunits(canonical, 7, 12))
    hyphen = spaced("-")
    out = pc.if_else(pa.array(kind == 0), pc.utf8_lower(canonical), hyphen)
    out = pc.if_else(pa.array(kind == 2), spaced(" "), out)
    return pc.if_else(pa.array(kind == 3), pc.utf8_lower(hyphen), out)


def _invalid_isrcs(canonical: pa.Array, kind: np.ndarray) -> pa.Array:
    """Strings no normalisation turns into a valid ISRC: truncated, overlong, placeholders."""
    placeholders = pa.array(["N/A", "unknown", "", "0000000000", "ISRC"])
    out = pc.if_else(pa.array(kind == 0), pc.utf8_slice_codeunits(canonical, 0, 11), join(canonical, "0"))
    return pc.if_else(pa.array(kind >= 2), pick(placeholders, kind % 5), out)


def track_chunk(plan: Plan, k: int, ordinal_counter: np.ndarray) -> TrackChunk:
    """Track chunk ``k``. ``ordinal_counter`` (tracks per artist so far) must see chunks in order."""
    s, e = chunk_bounds(plan.tracks, R.TRACK_CHUNK, k)
    n = e - s
    idx = np.arange(s, e)
    album, primary, _ = track_core(plan, k)
    pop = plan.track_pop[s:e].astype(np.int64)
    rng = ids.stream(plan.seed, "tracks", k)
    v = load_vocab()
    stats: Counter = Counter()
    genre = plan.album_genre(album).astype(np.int64)
    a_type = plan.album_type[album]
    a_size = np.diff(plan.album_start)[album]
    number = idx - plan.album_start[album] + 1
    two_discs = (a_type == R.COMPILATION) & (a_size >= R.TWO_DISC_MIN_TRACKS)
    half = (a_size + 1) // 2
    disc = np.where(two_discs & (number > half), 2, 1)
    number = np.where(disc == 2, number - half, number)
    year = plan.album_year[album].astype(np.int64)

    # Artists: primary first, then 1–2 featured artists of the same genre.
    multi = rng.random(n) < R.MULTI_ARTIST_RATE
    n_extra = np.where(multi, np.where(rng.random(n) < R.THREE_ARTIST_SHARE, 2, 1), 0)
    lo, cnt = plan.genre_artist_off[genre], np.diff(plan.genre_artist_off)[genre]
    matrix = np.full((n, 3), -1, dtype=np.int64)
    matrix[:, 0] = primary
    for slot in (1, 2):
        pos = np.floor(rng.random(n) * cnt).astype(np.int64)
        candidate = plan.genre_artists[lo + pos].astype(np.int64)
        for _ in range(2):  # step past artists already on the track
            clash = (candidate == matrix[:, 0]) | (candidate == matrix[:, 1])
            pos = np.where(clash, (pos + 1) % np.maximum(cnt, 1), pos)
            candidate = np.where(clash, plan.genre_artists[lo + pos], candidate)
        ok = (n_extra >= slot) & (candidate != matrix[:, 0]) & (candidate != matrix[:, 1])
        matrix[:, slot] = np.where(ok, candidate, -1)
    n_artists = (matrix >= 0).sum(axis=1)
    stats["multi_artist"] += int((n_artists > 1).sum())

    # Per-artist ordinal: titles and ISRC designation codes are unique per primary artist.
    order = np.argsort(primary, kind="stable")
    sorted_p = primary[order]
    first = np.r_[True, sorted_p[1:] != sorted_p[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    within = np.empty(n, dtype=np.int64)
    within[order] = np.arange(n) - group_start
    ordinal = ordinal_counter[primary].astype(np.int64) + within
    np.add.at(ordinal_counter, primary, 1)

    n_titles = len(v.titles)
    start = (ids.hash64(plan.seed, ids.NS_MISC, primary.astype(np.int64) + (3 << 40)) % np.uint64(n_titles))
    title_idx = (start.astype(np.int64) + ordinal * R.TITLE_STEP) % n_titles
    part = ordinal // n_titles
    part_suffix = pc.if_else(pa.array(part > 0), join(" (Part ", int_strings(part + 1), ")"), pa.scalar(""))
    base = join(pick(v.titles, title_idx), part_suffix)
    base_folded = join(pick(v.titles_folded, title_idx), part_suffix)

    # ISRC quality, then the cross-reference plant (ISRC plants need a valid ISRC).
    canonical = spotify_isrcs(plan, primary, ordinal, year)
    u = rng.random(n)
    quality = np.where(u < R.ISRC_NULL_RATE, 0, np.where(u < R.ISRC_NULL_RATE + R.ISRC_INVALID_RATE, 1, 2))
    cuts = np.cumsum([rate for _, rate in R.PLANT_RATES])
    plant = np.searchsorted(cuts, rng.random(n), side="right") + 1
    plant = np.where(plant > len(R.PLANT_RATES), 0, plant)
    needs_isrc = np.isin(plant, [R.PLANT_NAMES.index(p) for p in ("isrc_exact", "isrc_fuzzy", "isrc_shared")])
    plant = np.where(needs_isrc & (quality != 2), 0, plant).astype(np.int8)
    variation = rng.integers(0, len(R.METADATA_VARIATIONS), n).astype(np.int8)
    metadata = plant == R.PLANT_NAMES.index("metadata_match")
    variation = np.where(metadata, variation, 0).astype(np.int8)
    fuzzy = plant == R.PLANT_NAMES.index("isrc_fuzzy")
    fuzzy_kind, invalid_kind = rng.integers(0, 4, n), rng.integers(0, 6, n)
    written = where_rows(fuzzy, lambda r: _isrc_variants(pick(canonical, r), fuzzy_kind[r]), canonical)
    written = where_rows(quality == 1, lambda r: _invalid_isrcs(pick(canonical, r), invalid_kind[r]), written)
    written = pc.if_else(pa.array(quality == 0), pa.scalar(None, pa.string()), written)
    stats["isrc_null"] += int((quality == 0).sum())
    stats["isrc_invalid"] += int((quality == 1).sum())
    stats["isrc_fuzzy_written"] += int(fuzzy.sum())

    # Title = base + " (feat. X)" + release noise.
    def featured(rows: np.ndarray) -> pa.Array:
        second, third = matrix[rows, 1], matrix[rows, 2]
        names = artist_names(second, plan.artist_rank[second], plan.seed)
        more = where_rows(third >= 0, lambda r: join(" & ", artist_names(third[r], plan.artist_rank[third[r]],
                                                                       plan.seed)), pa.scalar(""))
        return join(" (feat. ", names, more, ")")

    feat = multi & (n_artists > 1) & (rng.random(n) < R.FEAT_IN_TITLE_SHARE)
    feat_str = where_rows(feat, featured, pa.scalar(""))
    noise_kind = rng.integers(0, len(RELEASE_NOISE), n)
    noisy = rng.random(n) < R.RELEASE_NOISE_RATE
    forced = metadata & (variation == R.METADATA_VARIATIONS.index("noise")) & ~feat
    noise_kind = np.where(forced & ~noisy, np.where(rng.random(n) < 0.5, 0, 3), noise_kind)
    noisy |= forced
    noise_kind = np.where((noise_kind <= 1) & (year > 2012), 3, noise_kind)  # only older releases get remasters
    remaster_year = np.minimum(year + rng.integers(8, 30, n), 2024)

    def release_noise(rows: np.ndarray) -> pa.Array:
        y, kind = int_strings(remaster_year[rows]), noise_kind[rows]
        out = pc.if_else(pa.array(kind == 0), join(" - ", y, " Remaster"), join(" (Remastered ", y, ")"))
        out = pc.if_else(pa.array(kind == 2), pa.scalar(" - Live"), out)
        return pc.if_else(pa.array(kind == 3), pa.scalar(" - Radio Edit"), out)

    noise_str = where_rows(noisy, release_noise, pa.scalar(""))
    title = join(base, feat_str, noise_str)
    stats["release_noise"] += int(noisy.sum())
    stats["feat_in_title"] += int(feat.sum())

    g_median = np.array([gg.duration_s for gg in R.GENRES])[genre]
    duration = np.clip(np.rint(g_median * 1000 * rng.lognormal(0.0, 0.3, n)), 30_000, 1_200_000).astype(np.int64)
    explicit = (rng.random(n) < np.array([gg.explicit for gg in R.GENRES])[genre]).astype(np.int64)
    track_ids = ids.base62_ids(plan.seed, ids.NS_TRACK, idx)
    preview = where_rows(rng.random(n) < R.PREVIEW_URL_RATE, lambda r: join(
        "https://p.scdn.co/mp3-preview/", ids.hex_strings(plan.seed, ids.NS_PREVIEW, idx[r], 40)), None)
    ean_code = rng.integers(10**12, 10**13, n)
    ean = where_rows(rng.random(n) < R.EAN_RATE, lambda r: int_strings(ean_code[r]), None)
    markets = rng.choice(len(AVAILABLE_MARKETS), n, p=MARKET_PROBS) + 1
    tracks = pa.table({
        "rowid": idx + 1,
        "id": track_ids,
        "fetched_at": fetched_at_ms(rng, n),
        "name": title,
        "preview_url": preview,
        "album_rowid": album + 1,
        "track_number": number,
        "external_id_isrc": written,
        "external_id_ean": ean,
        "external_id_upc": pa.nulls(n, pa.string()),
        "popularity": pop,
        "available_markets_rowid": markets,
        "disc_number": disc,
        "duration_ms": duration,
        "explicit": explicit,
    })
    present = matrix >= 0
    track_artists = pa.table({
        "track_rowid": np.broadcast_to((idx + 1)[:, None], matrix.shape)[present],
        "artist_rowid": matrix[present] + 1,
    })
    albums, artist_albums = _album_rows(plan, s, e, base, rng)
    features = audio_features(plan, k, idx, track_ids, genre, duration, stats)
    return TrackChunk(tracks, track_artists, albums, artist_albums, features, primary, matrix, base, base_folded,
                      plant, variation, canonical, stats)


def _album_rows(plan: Plan, s: int, e: int, base_titles: pa.Array, rng: np.random.Generator
                ) -> tuple[pa.Table, pa.Table]:
    """Albums whose first track falls in tracks [s, e). Singles are named after their track."""
    a0 = int(np.searchsorted(plan.album_start, s, side="left"))
    a1 = int(np.searchsorted(plan.album_start, e, side="left"))
    a1 = min(a1, plan.n_albums)
    alb = np.arange(a0, a1)
    n = len(alb)
    v = load_vocab()
    kind = plan.album_type[alb]
    artist = plan.album_artist[alb].astype(np.int64)
    year = plan.album_year[alb].astype(np.int64)
    first_title = base_titles.take(pa.array(plan.album_start[alb] - s))
    h = ids.hash64(plan.seed, ids.NS_ALBUM, alb + (1 << 40))
    album_title = pick(v.titles, (h % np.uint64(len(v.titles))).astype(np.int64))
    deluxe = rng.random(n)
    album_title = pc.if_else(pa.array(deluxe < 0.08), join(album_title, " (Deluxe Edition)"), album_title)
    album_title = pc.if_else(pa.array((deluxe > 0.96) & (year < 2000)), join(album_title, " (Remastered)"),
                             album_title)
    genre = plan.artist_genre[artist].astype(np.int64)
    tag = pc.utf8_title(pick(TAGS, TAG_OFFSETS[genre] + rng.integers(0, 8, n) % np.diff(TAG_OFFSETS)[genre]))
    compilation = join(pick(COMPILATION_FORMS, rng.integers(0, len(COMPILATION_FORMS), n)), tag)
    name = pc.if_else(pa.array(kind == R.SINGLE), first_title, album_title)
    name = pc.if_else(pa.array(kind == R.COMPILATION), compilation, name)
    label_word = pick(v.words, (ids.hash64(plan.seed, ids.NS_MISC, artist + (4 << 40)) % np.uint64(len(v.words)))
                       .astype(np.int64))
    label = join(label_word, pick(LABEL_SUFFIXES, artist % len(LABEL_SUFFIXES)))
    ys = int_strings(year)
    month, day = rng.integers(1, 13, n), rng.integers(1, 29, n)
    precision = rng.choice(3, n, p=R.RELEASE_DATE_PRECISION_PROBS)
    date = pc.if_else(pa.array(precision == 0), join(ys, "-", int_strings(month, 2), "-", int_strings(day, 2)), ys)
    date = pc.if_else(pa.array(precision == 1), join(ys, "-", int_strings(month, 2)), date)
    pop = np.clip(np.rint(plan.artist_pop[artist] * rng.uniform(0.6, 1.0, n)), 0, 100).astype(np.int64)
    albums = pa.table({
        "rowid": alb + 1,
        "id": ids.base62_ids(plan.seed, ids.NS_ALBUM, alb),
        "fetched_at": fetched_at_ms(rng, n),
        "name": name,
        "album_type": pick(pa.array(R.ALBUM_TYPE_NAMES), kind),
        "available_markets_rowid": rng.choice(len(AVAILABLE_MARKETS), n, p=MARKET_PROBS) + 1,
        "external_id_upc": int_strings((h >> np.uint64(20)).astype(np.int64) % 10**12, 12),
        "copyright_c": join("© ", ys, " ", label),
        "copyright_p": join("℗ ", ys, " ", label),
        "label": label,
        "popularity": pop,
        "release_date": date,
        "release_date_precision": pick(pa.array(["day", "month", "year"]), precision),
        "total_tracks": np.diff(plan.album_start)[alb],
        "external_id_amgid": pa.nulls(n, pa.string()),
    })
    artist_albums = pa.table({
        "artist_rowid": artist + 1,
        "album_rowid": alb + 1,
        "is_appears_on": np.zeros(n, np.int64),
        "is_implicit_appears_on": np.zeros(n, np.int64),
        "index_in_album": np.zeros(n, np.int64),
    })
    return albums, artist_albums


def audio_features(plan: Plan, k: int, idx: np.ndarray, track_ids: pa.Array, genre: np.ndarray,
                   duration: np.ndarray, stats: Counter) -> pa.Table:
    """One row per track: Beta draws around the genre profile, loudness tied to energy, tempo with
    half/double-time errors and a few outliers; 4 % null_response rows, 2 % key = -1."""
    rng = ids.stream(plan.seed, "audio-features", k)
    n = len(idx)
    cols: dict[str, np.ndarray] = {}
    for name, conc in R.FEATURE_CONCENTRATION.items():
        mean = np.clip(np.array([getattr(g, name) for g in R.GENRES])[genre], 0.005, 0.995)
        cols[name] = np.round(np.clip(rng.beta(mean * conc, (1 - mean) * conc), 0.0, 1.0), 4)
    energy_mean = np.array([g.energy for g in R.GENRES])[genre]
    loud_mean = np.array([g.loudness for g in R.GENRES])[genre]
    loudness = loud_mean + 10.0 * (cols["energy"] - energy_mean) + rng.normal(0, 2.5, n)
    loudness = np.round(np.clip(loudness, -60.0, 3.0), 3)
    tempo = rng.normal(np.array([g.tempo for g in R.GENRES])[genre], 18.0)
    flip = rng.random(n)
    tempo = np.where(flip < R.TEMPO_HALF_DOUBLE_RATE / 2, tempo / 2, tempo)
    tempo = np.where((flip >= R.TEMPO_HALF_DOUBLE_RATE / 2) & (flip < R.TEMPO_HALF_DOUBLE_RATE), tempo * 1.5, tempo)
    tempo = np.clip(tempo, 60.0, 200.0)
    outlier = rng.random(n)
    tempo = np.where(outlier < R.TEMPO_ZERO_RATE, 0.0, tempo)
    high = (outlier >= R.TEMPO_ZERO_RATE) & (outlier < R.TEMPO_ZERO_RATE + R.TEMPO_HIGH_RATE)
    tempo = np.round(np.where(high, rng.uniform(220.0, 250.0, n), tempo), 3)
    key = rng.integers(0, 12, n)
    key = np.where(rng.random(n) < R.AF_KEY_MINUS_ONE_RATE, -1, key)
    major = np.array([g.major for g in R.GENRES])[genre]
    mode = (rng.random(n) < major).astype(np.int64)
    signatures, probs = zip(*R.TIME_SIGNATURES)
    time_signature = np.array(signatures)[rng.choice(len(signatures), n, p=probs)]
    null = rng.random(n) < R.AF_NULL_RESPONSE_RATE
    key_minus_one = (key == -1) & ~null
    stats["af_null_response"] += int(null.sum())
    stats["af_key_minus_1"] += int(key_minus_one.sum())
    def col(values: np.ndarray, kind: pa.DataType) -> pa.Array:
        return pa.array(values, kind, mask=null)

    return pa.table({
        "rowid": idx + 1,
        "track_id": track_ids,
        "fetched_at": fetched_at_ms(rng, n),
        "null_response": null.astype(np.int64),
        "duration_ms": col(duration, pa.int64()),
        "time_signature": col(time_signature, pa.int64()),
        "tempo": col(tempo, pa.float64()),
        "key": col(key, pa.int64()),
        "mode": col(mode, pa.int64()),
        "danceability": col(cols["danceability"], pa.float64()),
        "energy": col(cols["energy"], pa.float64()),
        "loudness": col(loudness, pa.float64()),
        "speechiness": col(cols["speechiness"], pa.float64()),
        "acousticness": col(cols["acousticness"], pa.float64()),
        "instrumentalness": col(cols["instrumentalness"], pa.float64()),
        "liveness": col(cols["liveness"], pa.float64()),
        "valence": col(cols["valence"], pa.float64()),
    })
