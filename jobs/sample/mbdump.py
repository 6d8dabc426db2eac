"""The MusicBrainz side: ``mbdump/`` files in PostgreSQL COPY text format, planted from Spotify tracks.

Format (musicbrainz-dump.md): UTF-8, one row per line, TAB between columns, ``\\N`` for NULL, and inside
values the escapes ``\\\\`` ``\\t`` ``\\n`` ``\\r``; booleans ``t``/``f``; no header; columns in schema-31
order. The legacy layout (SCHEMA_SEQUENCE 30) has a sixth ``isrc`` column, ``source``, after ``isrc``.

Rows are rendered with Arrow kernels (escape, cast, element-wise join) and the resulting string buffer is
written as is: no per-row Python.

Planting (rates in ``rates.PLANT_RATES``) produces, per valid Spotify track, the expected answer of the
cross-reference job; ``truth`` rows say which MBID (recording.gid) it must find and by which method.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.sample import ids
from jobs.sample import rates as R
from jobs.sample.catalog import Plan, TrackChunk, filler_isrcs, where_rows
from jobs.sample.vocab import artist_names, join, load_vocab, person_sort_names

FILES = ("isrc", "recording", "artist_credit", "artist_credit_name", "artist")
SCHEMA_SEQUENCE = {"31": "31", "legacy": "30"}
REPLICATION_SEQUENCE = "181213"
TIMESTAMP = "2026-05-16 00:00:01.153839+00"

MB_ARTIST_BASE = 10_000  # MB artist id = base + artist index (Spotify artists first, then MB-only ones)
RECORDING_BASE = 1_000_000
ISRC_BASE = 100_000
MULTI_CREDIT_BASE = 90_000_000  # multi-artist credits; single-artist credits reuse the artist id
CREATED = "2011-01-18 16:24:02.551922+00"  # MB's own import date, as in the real dump
ESCAPE_SAMPLES = ("\t(tab)", " \\ back\\slash", "\nsecond line", " carriage\r")

PLANT = {name: code for code, name in enumerate(R.PLANT_NAMES)}
TRUTH_SCHEMA = pa.schema([
    ("spotify_id", pa.string()),
    ("isrc_as_written", pa.string()),
    ("expected_mbid", pa.string()),
    ("expected_method", pa.string()),
    ("plant", pa.string()),
])


def copy_escape(values: pa.Array) -> pa.Array:
    """COPY text escaping of a string column (backslash first, so escapes are not escaped twice)."""
    for raw, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        values = pc.replace_substring(values, raw, escaped)
    return values


def copy_text(columns: Sequence[pa.Array]) -> memoryview:
    """Rows as COPY text: escaped, TAB-joined, NULL as ``\\N``, each line ending in a newline."""
    parts = []
    for column in columns:
        text = copy_escape(column) if pa.types.is_string(column.type) else pc.cast(column, pa.string())
        parts.append(pc.fill_null(text, "\\N"))
    lines = join(pc.binary_join_element_wise(*parts, "\t"), "\n")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset: lines.offset + len(lines) + 1]
    data = lines.buffers()[2]
    return memoryview(data)[int(offsets[0]): int(offsets[-1])] if data is not None else memoryview(b"")


@cache
def _timestamp_pool() -> pa.Array:
    """4096 PostgreSQL timestamptz texts (2011–2025); rows pick from the pool (strftime per row is slow)."""
    rng = np.random.default_rng(31)
    seconds = pa.array(np.sort(rng.integers(1_295_000_000, 1_745_000_000, 4096)), pa.timestamp("s"))
    micros = pc.utf8_lpad(pc.cast(pa.array(rng.integers(0, 1_000_000, 4096)), pa.string()), 6, "0")
    return join(pc.strftime(seconds, format="%Y-%m-%d %H:%M:%S"), ".", micros, "+00")


def _timestamps(rng: np.random.Generator, n: int) -> pa.Array:
    return _take(_timestamp_pool(), rng.integers(0, 4096, n))


def _take(values: pa.Array, index: np.ndarray) -> pa.Array:
    return values.take(pa.array(np.asarray(index, dtype=np.int64)))


class MbDumpWriter:
    """Plants recordings chunk by chunk and appends them to the five mbdump files."""

    def __init__(self, directory: Path, plan: Plan, isrc_layout: str) -> None:
        self.directory = directory
        self.plan = plan
        self.legacy = isrc_layout == "legacy"
        directory.mkdir(parents=True)
        self.files = {name: (directory / name).open("wb", buffering=1 << 20) for name in FILES}
        self.rows: Counter = Counter()
        self.stats: Counter = Counter()
        self.emitted = np.zeros(plan.artists, dtype=bool)
        self.mb_only = 0  # MusicBrainz-only artists created so far
        self.recordings = 0
        self.isrcs = 0
        self.filler_isrcs = 0
        self.multi_credits = 0

    def _write(self, name: str, columns: Sequence[pa.Array]) -> None:
        if len(columns[0]):
            self.files[name].write(copy_text(columns))
            self.rows[name] += len(columns[0])

    # --------------------------------------------------------------------------------- artists
    def _emit_artists(self, index: np.ndarray, spotify: bool, rng: np.random.Generator) -> None:
        """Artist rows plus their single-artist credit (id = artist id) for artists not written yet."""
        if spotify:
            index = np.unique(index)
            index = index[~self.emitted[index]]
            self.emitted[index] = True
        n = len(index)
        if n == 0:
            return
        rank = self.plan.artist_rank[index] if spotify else None
        mb_id = pa.array(MB_ARTIST_BASE + index)
        name = self.artist_names(index, spotify)
        folded = self._folded(index) if spotify else np.zeros(n, bool)
        sort_name = pc.if_else(pa.array(folded), name, person_sort_names(index, rank, self.plan.seed))
        gid = ids.uuids(self.plan.seed, ids.NS_MB_ARTIST, index)
        null_int = pa.nulls(n, pa.int64())
        begin = pa.array(rng.integers(1940, 2015, n), mask=rng.random(n) < 0.4)
        self._write("artist", [
            mb_id, gid, name, sort_name, begin, null_int, null_int, null_int, null_int, null_int,
            pa.array(np.where(pc.equal(sort_name, name).to_numpy(zero_copy_only=False), 2, 1)),
            null_int, null_int, pa.array([""] * n, pa.string()), pa.array(np.zeros(n, np.int64)),
            pc.if_else(pa.array(rng.random(n) < 0.5), _timestamps(rng, n), pa.scalar(None, pa.string())),
            pa.array(["f"] * n, pa.string()), null_int, null_int,
        ])
        self._write("artist_credit", [
            mb_id, name, pa.array(np.ones(n, np.int64)), pa.array(rng.integers(1, 60, n)),
            pa.array([CREATED] * n, pa.string()),
            pa.array(np.zeros(n, np.int64)), ids.uuids(self.plan.seed, ids.NS_MB_CREDIT, index),
        ])
        self._write("artist_credit_name",
                    [mb_id, pa.array(np.zeros(n, np.int64)), mb_id, name, pa.array([""] * n, pa.string())])
        self.stats["artists_spotify" if spotify else "artists_mb_only"] += n

    def _folded(self, index: np.ndarray) -> np.ndarray:
        h = ids.hash64(self.plan.seed, ids.NS_MB_ARTIST, np.asarray(index, np.int64) + (1 << 40))
        return (h % np.uint64(1000)).astype(np.int64) < int(R.MB_ARTIST_FOLD_RATE * 1000)

    def artist_names(self, index: np.ndarray, spotify: bool) -> pa.Array:
        """MusicBrainz spelling: the Spotify name, accent-folded for some artists."""
        rank = self.plan.artist_rank[index] if spotify else None
        name = artist_names(index, rank, self.plan.seed)
        if not spotify:
            return name
        folded = artist_names(index, rank, self.plan.seed, folded=True)
        return pc.if_else(pa.array(self._folded(index)), folded, name)

    def _new_mb_only(self, n: int, rng: np.random.Generator) -> np.ndarray:
        index = self.plan.artists + self.mb_only + np.arange(n)
        self.mb_only += n
        self._emit_artists(index, spotify=False, rng=rng)
        return index

    def _multi_credits(self, matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """New credits "A feat. B & C" / "A & B" for rows of ``matrix`` (artist indices, -1 padded)."""
        n = len(matrix)
        credit = MULTI_CREDIT_BASE + self.multi_credits + np.arange(n)
        self.multi_credits += n
        feat = rng.random(n) < 0.6
        count = (matrix >= 0).sum(axis=1)
        names = [self.artist_names(np.maximum(matrix[:, j], 0), True) for j in range(3)]
        first_join = pc.if_else(pa.array(feat), pa.scalar(" feat. "), pa.scalar(" & "))
        joins = [first_join, pa.array([" & "] * n, pa.string()), pa.array([""] * n, pa.string())]
        joins[1] = pc.if_else(pa.array(count > 2), joins[1], pa.scalar(""))
        joins[0] = pc.if_else(pa.array(count > 1), joins[0], pa.scalar(""))
        full = join(names[0], joins[0], names[1])
        full = pc.if_else(pa.array(count > 2), join(full, joins[1], names[2]), full)
        self._write("artist_credit", [
            pa.array(credit), full, pa.array(count), pa.array(rng.integers(1, 5, n)), _timestamps(rng, n),
            pa.array(np.zeros(n, np.int64)), ids.uuids(self.plan.seed, ids.NS_MB_CREDIT, credit),
        ])
        present = matrix >= 0
        rows = np.broadcast_to(np.arange(n)[:, None], matrix.shape)[present]
        position = np.broadcast_to(np.arange(3)[None, :], matrix.shape)[present]
        flat_names = pa.concat_arrays(names).take(pa.array(position * n + rows))
        flat_joins = pa.concat_arrays(joins).take(pa.array(position * n + rows))
        self._write("artist_credit_name", [
            pa.array(credit[rows]), pa.array(position), pa.array(MB_ARTIST_BASE + matrix[present]), flat_names,
            flat_joins,
        ])
        return credit

    # ------------------------------------------------------------------------------ recordings
    def plant(self, chunk: TrackChunk, k: int) -> pa.Table:
        """MB rows for one track chunk plus its fillers; returns the truth rows of its tracks."""
        rng = ids.stream(self.plan.seed, "musicbrainz", k)
        n = chunk.tracks.num_rows
        plant = chunk.plant
        duration = chunk.tracks["duration_ms"].to_numpy()
        matrix = chunk.artist_matrix

        # Artists credited on planted recordings (decoy_other_artist gets a MusicBrainz-only artist).
        planted = np.flatnonzero(plant > 0)
        other = plant[planted] == PLANT["decoy_other_artist"]
        own = planted[~other]
        multi = own[((matrix[own, 1] >= 0) & (rng.random(len(own)) < R.MB_MULTI_CREDIT_RATE))]
        self._emit_artists(np.concatenate([chunk.primary[own].astype(np.int64), matrix[multi][matrix[multi] >= 0]]),
                           spotify=True, rng=rng)
        credit = np.full(n, -1, dtype=np.int64)
        credit[own] = MB_ARTIST_BASE + chunk.primary[own]
        if len(multi):
            credit[multi] = self._multi_credits(matrix[multi], rng)
        decoys = planted[other]
        credit[decoys] = MB_ARTIST_BASE + self._new_mb_only(len(decoys), rng)
        self.stats["multi_artist_credits"] += len(multi)

        # One recording per planted track, two for a shared ISRC.
        shared = planted[plant[planted] == PLANT["isrc_shared"]]
        track = np.concatenate([planted, shared])
        role_other = np.r_[np.zeros(len(planted), bool), np.ones(len(shared), bool)]
        p = plant[track]
        m = len(track)
        jitter = np.where(p == PLANT["metadata_match"],
                          rng.integers(-R.METADATA_LENGTH_TOLERANCE_MS, R.METADATA_LENGTH_TOLERANCE_MS + 1, m),
                          rng.integers(-R.ISRC_LENGTH_JITTER_MS, R.ISRC_LENGTH_JITTER_MS + 1, m))
        jitter = np.where(p == PLANT["isrc_shared"], jitter // 2, jitter)
        far = rng.integers(*R.SHARED_FAR_LENGTH_MS, m)
        off = rng.integers(*R.DECOY_LENGTH_OFF_MS, m)
        d = duration[track]
        jitter = np.where(role_other, np.where(d - far > 30_000, -far, far), jitter)
        jitter = np.where(p == PLANT["decoy_duration"], np.where((d - off > 30_000) & (rng.random(m) < 0.5), -off, off),
                          jitter)
        length = d + jitter
        null_length = np.isin(p, [PLANT["isrc_exact"], PLANT["isrc_fuzzy"]]) & (rng.random(m) < R.MB_LENGTH_NULL_RATE)

        base = _take(chunk.base_title, track)
        variation = chunk.variation[track]
        lower = pc.utf8_lower(base)
        cased = pc.if_else(pa.array(rng.random(m) < 0.5), lower, pc.utf8_upper(base))
        name = pc.if_else(pa.array(variation == R.METADATA_VARIATIONS.index("case")), cased, base)
        name = pc.if_else(pa.array(variation == R.METADATA_VARIATIONS.index("accents")),
                          _take(chunk.base_title_folded, track), name)
        comment = pc.if_else(pa.array(role_other), pa.scalar("radio edit"), pa.scalar(""))

        # Fillers: unrelated recordings of MusicBrainz-only artists with their own ISRCs.
        n_fill = round(n * R.MB_FILLER_RATE)
        fill_artist = self._new_mb_only(-(-n_fill // R.MB_FILLERS_PER_ARTIST), rng)
        v = load_vocab()
        fill_name = _take(v.titles, rng.integers(0, len(v.titles), n_fill))
        escaped = rng.random(n_fill) < R.MB_ESCAPE_NAME_RATE
        if k == 0:
            escaped[: min(n_fill, len(ESCAPE_SAMPLES))] = True
        sample = _take(pa.array(ESCAPE_SAMPLES), np.arange(n_fill) % len(ESCAPE_SAMPLES))
        fill_name = pc.if_else(pa.array(escaped), join(fill_name, sample), fill_name)
        self.stats["filler_names_with_escapes"] += int(escaped.sum())
        fill_length = np.rint(rng.lognormal(np.log(215_000), 0.35, n_fill)).astype(np.int64)

        total = m + n_fill
        all_names = pa.concat_arrays([name, fill_name])
        all_credit = np.concatenate([credit[track], MB_ARTIST_BASE + fill_artist[np.arange(n_fill) //
                                                                                 R.MB_FILLERS_PER_ARTIST]])
        all_length = np.concatenate([length, fill_length])
        all_null = np.concatenate([null_length, rng.random(n_fill) < 0.1])
        all_comment = pa.concat_arrays([comment, pa.array([""] * n_fill, pa.string())])
        # Shuffle so recording ids say nothing about the plant; ids are then sequential in file order.
        order = rng.permutation(total)
        position = np.empty(total, dtype=np.int64)
        position[order] = np.arange(total)
        rec_id = RECORDING_BASE + self.recordings + position  # id of recording i (pre-shuffle index)
        gid = ids.uuids(self.plan.seed, ids.NS_MB_RECORDING, rec_id - RECORDING_BASE)
        self.recordings += total
        self._write("recording", [
            pa.array(rec_id[order]), _take(gid, order), _take(all_names, order), pa.array(all_credit[order]),
            pa.array(all_length[order], mask=all_null[order]), _take(all_comment, order),
            pa.array(np.zeros(total, np.int64)),
            pc.if_else(pa.array(rng.random(total) < 0.3), _timestamps(rng, total), pa.scalar(None, pa.string())),
            pa.array(["f"] * total, pa.string()),
        ])

        # ISRC rows: the canonical code for ISRC plants, unrelated codes for some others and all fillers.
        isrc_plant = np.isin(p, [PLANT["isrc_exact"], PLANT["isrc_fuzzy"], PLANT["isrc_shared"]])
        second = isrc_plant & (rng.random(m) < R.MB_SECOND_ISRC_RATE)
        unrelated = ((p == PLANT["metadata_match"]) & (rng.random(m) < R.MB_METADATA_WITH_OTHER_ISRC_RATE)) | (
            (p == PLANT["decoy_other_artist"]) & (rng.random(m) < R.MB_METADATA_WITH_OTHER_ISRC_RATE))
        canon_rec = np.flatnonzero(isrc_plant)
        extra_rec = np.concatenate([np.flatnonzero(second | unrelated), m + np.arange(n_fill)])
        extra_codes = filler_isrcs(self.plan.seed, self.filler_isrcs + np.arange(len(extra_rec)))
        self.filler_isrcs += len(extra_rec)
        isrc_rec = np.concatenate([canon_rec, extra_rec])
        codes = pa.concat_arrays([_take(chunk.isrc_canonical, track[canon_rec]), extra_codes])
        order = np.argsort(rec_id[isrc_rec], kind="stable")
        n_isrc = len(isrc_rec)
        columns = [pa.array(ISRC_BASE + self.isrcs + np.arange(n_isrc)), pa.array(rec_id[isrc_rec][order]),
                   _take(codes, order)]
        if self.legacy:
            columns.append(pa.array(np.zeros(n_isrc, np.int64)))
        columns += [pa.array(np.zeros(n_isrc, np.int64)), _timestamps(rng, n_isrc)]
        self._write("isrc", columns)
        self.isrcs += n_isrc

        for name_, code in PLANT.items():
            if code:
                self.stats[f"plant_{name_}"] += int((plant == code).sum())
        self.stats["recordings_planted"] += m
        self.stats["recordings_filler"] += n_fill
        self.stats["recordings_length_null"] += int(all_null.sum())
        self.stats["isrc_second"] += int(second.sum())
        self.stats["isrc_unrelated_on_planted"] += int(unrelated.sum())

        # Truth: the expected recording is the planted one (for a shared ISRC, the closer one).
        expected = np.full(n, -1, dtype=np.int64)
        first = ~role_other
        expects = first & np.isin(p, [PLANT[x] for x, method in R.PLANT_METHOD.items() if method != "no_match"])
        expected[track[expects]] = np.flatnonzero(expects)
        mbid = where_rows(expected >= 0, lambda rows: _take(gid, expected[rows]), None)
        method = _take(pa.array(R.PLANT_NAMES), plant)
        return pa.table({
            "spotify_id": chunk.tracks["id"],
            "isrc_as_written": chunk.tracks["external_id_isrc"],
            "expected_mbid": mbid,
            "expected_method": _take(pa.array([R.PLANT_METHOD[x] for x in R.PLANT_NAMES]), plant),
            "plant": method,
        }, schema=TRUTH_SCHEMA)

    def close(self, schema_sequence: str) -> None:
        for handle in self.files.values():
            handle.close()
        (self.directory / "SCHEMA_SEQUENCE").write_text(schema_sequence + "\n")
        (self.directory / "TIMESTAMP").write_text(TIMESTAMP + "\n")
        (self.directory / "REPLICATION_SEQUENCE").write_text(REPLICATION_SEQUENCE + "\n")

    def abort(self) -> None:
        for handle in self.files.values():
            handle.close()
