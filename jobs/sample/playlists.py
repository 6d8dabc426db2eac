"""Playlists and their track lists, chunk by chunk (real layout).

Picks follow a Zipf law over popularity rank (85 % within the playlist's genre), drawn by inverse CDF on
whole chunks at once; accidental repeats inside a playlist are re-drawn, a few deliberate ones planted.
Rows of the other kinds the release holds (episodes, local files, ghost IDs, unresolvable rows) are mixed in.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.sample import ids
from jobs.sample import rates as R
from jobs.sample.catalog import (
    GENRE_WEIGHTS,
    N_GENRES,
    TAG_OFFSETS,
    TAGS,
    Plan,
    chunk_bounds,
    fetched_at_ms,
    int_strings,
    pick,
    scatter,
    zipf_index,
)
from jobs.sample.vocab import artist_names, join, load_vocab

# Playlist row kinds (manifest names in ``ROW_KIND_NAMES``).
TRACK, GHOST, EPISODE, LOCAL, NULL_NO_ID, DANGLING = range(6)
ROW_KIND_NAMES = ("track", "ghost", "episode", "local", "null_without_id", "dangling_track_rowid")
PLAYLIST_SUFFIXES = pa.array([" Mix", " Vibes", " Essentials", " Hits", " Party", " Classics", " Radar", " Chill",
                              " Workout", " Favourites", " Rotation", " Deep Cuts", " 2024", " ✨", " Forever"])
DESCRIPTION_HEADS = pa.array(["The best of ", "Your daily dose of ", "All the ", ""])
DESCRIPTION_TAILS = pa.array([". Updated weekly.", ".", " you need, in one place.",
                              " for late nights & early mornings."])


@dataclass
class PlaylistChunk:
    """Playlist chunk: both tables in the real layout plus per-row kind and repeat flags (a repeat is a
    later occurrence of the same track or ghost ID in the same playlist)."""

    playlists: pa.Table
    playlist_tracks: pa.Table
    kind: np.ndarray
    repeat: np.ndarray
    stats: Counter


def repeats(group: np.ndarray, key: np.ndarray) -> np.ndarray:
    """True for every later occurrence of a (group, key) pair (earlier = lower array position)."""
    out = np.zeros(len(key), dtype=bool)
    if len(key) == 0:
        return out
    composite = group.astype(np.int64) * (int(key.max()) + 1) + key  # both non-negative, < 2**63
    order = np.argsort(composite, kind="stable")  # stable: earlier rows first within a pair
    c = composite[order]
    same = c[1:] == c[:-1]
    out[order[1:][same]] = True
    return out


def _playlist_lengths(rng: np.random.Generator, m: int, first_chunk: bool) -> np.ndarray:
    u = rng.random(m)
    bulk = np.clip(np.rint(rng.lognormal(math.log(R.PLAYLIST_LENGTH_MEDIAN), R.PLAYLIST_LENGTH_SIGMA, m)), 5, 500)
    short = rng.integers(1, 5, m)
    long = rng.integers(501, R.PLAYLIST_LONG_MAX + 1, m)
    length = np.where(u < R.PLAYLIST_SHORT_RATE, short,
                      np.where(u < R.PLAYLIST_SHORT_RATE + R.PLAYLIST_LONG_RATE, long, bulk)).astype(np.int64)
    if first_chunk and m >= 40:  # guarantee both tails exist in any dump with >= 40 playlists
        if not (length < 5).any():
            length[1] = 3
        if not (length > 500).any():
            length[0] = 650
    return length


def _special_kinds(rng: np.random.Generator, n: int, first_chunk: bool) -> np.ndarray:
    u = rng.random(n)
    kind = np.full(n, TRACK, dtype=np.int8)
    cut = np.cumsum([R.ROW_EPISODE_RATE, R.ROW_LOCAL_RATE, R.ROW_GHOST_RATE, R.ROW_UNRESOLVABLE_RATE])
    kind[u < cut[0]] = EPISODE
    kind[(u >= cut[0]) & (u < cut[1])] = LOCAL
    kind[(u >= cut[1]) & (u < cut[2])] = GHOST
    unresolvable = (u >= cut[2]) & (u < cut[3])
    kind[unresolvable] = np.where(rng.random(int(unresolvable.sum())) < 0.5, NULL_NO_ID, DANGLING)
    if first_chunk and n >= 50:  # a handful of each special kind, even in tiny dumps
        for special in (GHOST, EPISODE, LOCAL, NULL_NO_ID, DANGLING):
            missing = R.MIN_SPECIAL_ROWS - int((kind == special).sum())
            if missing > 0:
                candidates = np.flatnonzero(kind == TRACK)
                kind[rng.choice(candidates, missing, replace=False)] = special
    return kind


def _draw_tracks(plan: Plan, rng: np.random.Generator, genre: np.ndarray, uniform: bool = False) -> np.ndarray:
    """Track indices for rows of playlists of ``genre`` (-1 = mixed): 85 % from the genre, Zipf over its
    popularity ranks; otherwise Zipf over all tracks (uniform when ``uniform``)."""
    n = len(genre)
    if uniform:
        return rng.integers(0, plan.tracks, n)
    g = np.maximum(genre, 0)
    size = np.diff(plan.genre_track_off)[g]
    in_genre = (genre >= 0) & (size > 0) & (rng.random(n) < R.PLAYLIST_IN_GENRE_RATE)
    u = rng.random(n)
    local = plan.by_genre[np.minimum(plan.genre_track_off[g] + zipf_index(u, np.maximum(size, 1)),
                                     plan.tracks - 1)]
    anywhere = plan.by_pop[zipf_index(u, plan.tracks)]
    return np.where(in_genre, local, anywhere).astype(np.int64)


def playlist_chunk(plan: Plan, k: int) -> PlaylistChunk:
    ps, pe = chunk_bounds(plan.playlists, R.PLAYLIST_CHUNK, k)
    m = pe - ps
    rng = ids.stream(plan.seed, "playlists", k)
    stats: Counter = Counter()
    pidx = np.arange(ps, pe)
    genre = rng.choice(N_GENRES, m, p=GENRE_WEIGHTS).astype(np.int64)
    genre = np.where(rng.random(m) < R.PLAYLIST_MIXED_RATE, -1, genre)
    length = _playlist_lengths(rng, m, k == 0)
    n = int(length.sum())
    pl = np.repeat(np.arange(m), length)
    starts = np.cumsum(length) - length
    position = np.arange(n) - np.repeat(starts, length)
    kind = _special_kinds(rng, n, k == 0)

    # Tracks: draw, then re-draw accidental repeats inside a playlist; what is left stays a repeat.
    is_track = np.flatnonzero(kind == TRACK)
    track = np.full(n, -1, dtype=np.int64)
    track[is_track] = _draw_tracks(plan, rng, genre[pl[is_track]])
    for attempt in range(R.DEDUP_ROUNDS + 2):
        dup = is_track[repeats(pl[is_track], track[is_track])]
        if len(dup) == 0:
            break
        track[dup] = _draw_tracks(plan, rng, genre[pl[dup]], uniform=attempt >= R.DEDUP_ROUNDS)
    stats["accidental_repeats"] += int(repeats(pl[is_track], track[is_track]).sum())
    prev_track = np.r_[False, (kind[1:] == TRACK) & (kind[:-1] == TRACK) & (pl[1:] == pl[:-1])]
    planted = prev_track & (rng.random(n) < R.DUPLICATE_PLANT_RATE)
    planted[1:] &= ~planted[:-1]  # never copy a row that is itself being overwritten
    planted_rows = np.flatnonzero(planted)
    track[planted_rows] = track[planted_rows - 1]
    stats["planted_repeats"] += len(planted_rows)

    ghost = zipf_index(rng.random(n), plan.ghost_pool)
    episode = zipf_index(rng.random(n), plan.episode_pool)
    keyed = (kind == TRACK) | (kind == GHOST)
    key = np.where(kind == TRACK, track, plan.tracks + ghost)
    repeat = np.zeros(n, dtype=bool)
    repeat[keyed] = repeats(pl[keyed], key[keyed])

    is_ghost, is_episode, is_local = kind == GHOST, kind == EPISODE, kind == LOCAL
    dangling = kind == DANGLING
    max_rowid = plan.tracks + plan.n_malformed * len(R.TRACK_MALFORMED_REASONS)
    track_rowid = np.where(kind == TRACK, track + 1, max_rowid + 1_000 + rng.integers(0, 1_000_000, n))
    other_id = pc.if_else(
        pa.array(is_ghost),
        scatter(ids.base62_ids(plan.seed, ids.NS_GHOST, ghost[is_ghost]), is_ghost),
        scatter(ids.base62_ids(plan.seed, ids.NS_EPISODE, episode[is_episode]), is_episode),
    )

    playlists, owner = _playlist_rows(plan, rng, pidx, genre, length)
    created = rng.integers(1_230_768_000, 1_748_736_000, m)
    gap = np.exp(rng.uniform(np.log(600), np.log(20 * 86_400), m))
    added = created[pl] + np.rint(position * gap[pl] * rng.uniform(0.5, 1.5, n)).astype(np.int64)
    added = np.minimum(added, R.FETCHED_AT_MS // 1000)
    zero = rng.random(m) < R.ADDED_AT_ZERO_RATE
    added = np.where(zero[pl], 0, added)

    v = load_vocab()
    n_local = int(is_local.sum())
    local_title = pick(v.titles, rng.integers(0, len(v.titles), n_local))
    local_album = pick(v.titles, rng.integers(0, len(v.titles), n_local))
    local_artist = artist_names(rng.integers(0, v.artist_capacity, n_local), None, plan.seed + 1)
    local_seconds = rng.integers(90, 420, n_local)
    uri = join("spotify:local:", pc.replace_substring(local_artist, " ", "+"), ":",
               pc.replace_substring(local_album, " ", "+"), ":", pc.replace_substring(local_title, " ", "+"), ":",
               int_strings(local_seconds))
    rows = pa.table({
        "playlist_rowid": pidx[pl] + 1,
        "position": position,
        "is_episode": is_episode.astype(np.int64),
        "track_rowid": pa.array(track_rowid, mask=~((kind == TRACK) | dangling)),
        "id_if_not_in_tracks_table": other_id,
        "added_at": added,
        "added_by_id": owner.take(pa.array(pl)),
        "primary_color": pa.nulls(n, pa.string()),
        "video_thumbnail_url": pa.nulls(n, pa.string()),
        "is_local": is_local.astype(np.int64),
        "name_if_is_local": scatter(local_title, is_local),
        "uri_if_is_local": scatter(uri, is_local),
        "album_name_if_is_local": scatter(local_album, is_local),
        "artists_name_if_is_local": scatter(local_artist, is_local),
        "duration_ms_if_is_local": scatter(pa.array(local_seconds * 1000), is_local),
    })
    for code, name in enumerate(ROW_KIND_NAMES):
        stats[f"rows_{name}"] += int((kind == code).sum())
    stats["repeat_track"] += int((repeat & (kind == TRACK)).sum())
    stats["repeat_ghost"] += int((repeat & is_ghost).sum())
    stats["added_at_zero"] += int((added == 0).sum())
    stats["mixed_genre"] += int((genre < 0).sum())
    stats["length_lt_5"] += int((length < 5).sum())
    stats["length_gt_500"] += int((length > 500).sum())
    return PlaylistChunk(playlists, rows, kind, repeat, stats)


def _playlist_rows(plan: Plan, rng: np.random.Generator, pidx: np.ndarray, genre: np.ndarray,
                   length: np.ndarray) -> tuple[pa.Table, pa.Array]:
    """The ``playlists`` rows of a chunk, and each playlist's owner ID (for ``added_by_id``)."""
    m = len(pidx)
    v = load_vocab()
    g = np.where(genre < 0, rng.integers(0, N_GENRES, m), genre)
    tag = pick(TAGS, TAG_OFFSETS[g] + rng.integers(0, 64, m) % np.diff(TAG_OFFSETS)[g])
    spotify = rng.random(m) < R.SPOTIFY_OWNED_RATE
    style = rng.random(m)
    real = pick(v.playlist_names, rng.integers(0, len(v.playlist_names), m))
    tagged = join(pc.utf8_title(tag), pick(PLAYLIST_SUFFIXES, rng.integers(0, len(PLAYLIST_SUFFIXES), m)))
    n_words = len(v.words)
    words = join(pick(v.words, rng.integers(0, n_words, m)), " ", pick(v.words, rng.integers(0, n_words, m)))
    words = pc.if_else(pa.array(rng.random(m) < 0.3), pc.utf8_lower(words), words)
    name = pc.if_else(pa.array(style < 0.4), real, pc.if_else(pa.array(style < 0.75), tagged, words))
    template = rng.integers(0, len(DESCRIPTION_HEADS), m)
    description = join(pick(DESCRIPTION_HEADS, template), tag, pick(DESCRIPTION_TAILS, template))
    description = pc.if_else(pa.array(rng.random(m) < R.DESCRIPTION_RATE), description, pa.scalar(""))
    users = max(1, plan.playlists // 3)
    user = pc.utf8_lower(ids.base62_strings(plan.seed, ids.NS_USER, rng.integers(0, users, m), 25))
    owner = pc.if_else(pa.array(spotify), pa.scalar("spotify"), user)
    display = join(pick(v.first_names, rng.integers(0, len(v.first_names), m)), " ",
                   pick(v.last_names, rng.integers(0, len(v.last_names), m)))
    display = pc.if_else(pa.array(spotify), pa.scalar("Spotify"), display)
    followers = np.rint(10 ** np.where(spotify, rng.normal(4.8, 0.8, m), rng.normal(3.3, 0.5, m))).astype(np.int64)
    collaborative = (~spotify & (rng.random(m) < R.COLLABORATIVE_RATE)).astype(np.int64)
    public = ((rng.random(m) < 0.95) & (collaborative == 0)).astype(np.int64)
    table = pa.table({
        "rowid": pidx + 1,
        "id": ids.base62_ids(plan.seed, ids.NS_PLAYLIST, pidx),
        "snapshot_id": join("MT", ids.base62_strings(plan.seed, ids.NS_SNAPSHOT, pidx, 42)),
        "fetched_at": fetched_at_ms(rng, m),
        "name": name,
        "description": description,
        "collaborative": collaborative,
        "public": public,
        "primary_color": pa.nulls(m, pa.string()),
        "owner_id": owner,
        "owner_display_name": display,
        "followers_total": followers,
        "tracks_total": length,
    })
    return table, owner
