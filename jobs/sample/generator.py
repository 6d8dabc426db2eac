"""Deterministic, streaming generator of a fake Spotify metadata release and MusicBrainz dump.

Everything downstream (ingest, co-occurrence, cross-reference, vectors; their tests and benchmarks) runs on
this output, so it mimics the real files (``real-dump-layout.md``, ``musicbrainz-dump.md``) and records in
``_sample_manifest.json`` exact counts of everything written, and in ``_sample_truth_xref.parquet`` the
answer the cross-reference job must find for every valid track.

Shapes and rates (constants in ``rates.py``; T = ``spec.tracks`` valid tracks):

- Sizes: artists ≈ T/8, albums ≈ T/4.2 (72 % singles of 1 track, 24 % albums of 8–16, 4 % compilations of
  10–20, the longest on two discs), playlists P = T/10 unless set, ~70 rows per playlist on average
  (T = 2M → ~14M playlist rows), a pool of T/50 "ghost" track IDs and T/100 episode IDs.
- Genres: 10 macro genres (pop 20 %, rock 15, hip-hop 15, edm 10, latin 9, r&b 7, acoustic-folk 8, metal 6,
  jazz 5, classical 5), each with 8–11 Spotify genre strings (0–4 per artist; 18 % of artists none) and an
  audio-feature profile agreeing with the spec's GENRE_PROFILES.
- Popularity: artist popularity = 100·(1 − q)^24 for its popularity percentile q, popular artists release
  more; a track keeps 55–100 % of its artist's popularity ± 4 → ~85 % of tracks below 20, ~1 % at 80+,
  a head reaching 100. Followers log-normal around 10^(1 + 0.11·popularity).
- Tracks: 15 % have 2–3 artists (40 % of those say "(feat. X)" in the title); 7 % carry release noise
  (" - 2011 Remaster", " (Remastered 2009)", " - Live", " - Radio Edit"). Titles come from real titles
  (accents, some CJK), unique per primary artist. ISRCs CC·XXX·YY·NNNNN, unique; 2 % NULL, 0.5 % invalid.
- Audio features: one row per track keyed by base62 ``track_id``; 4 % ``null_response = 1`` (all features
  NULL), 2 % ``key = -1``; Beta draws around the genre profile, loudness tied to energy (−60..+3 dB),
  tempo 60–200 with 5 % half/double-time, 0.2 % zero and 0.3 % above 220.
- Playlists: 10 % mixed genre; lengths 5 % in 1–4, 2.5 % in 501–800, the rest log-normal (median 40,
  σ 0.9) in 5–500; 85 % of picks from the playlist's genre, Zipf (s = 0.9) over popularity rank, accidental
  repeats re-drawn, 0.2 % planted repeats of the previous track. Rows: 1 % episodes, 0.5 % local files,
  2 % ghosts (Zipf over the ghost pool, so they recur), 0.02 % unresolvable (half NULL without ID, half
  dangling rowid); 3 % of playlists have ``added_at = 0``.
- Malformed rows (appended after the valid ones, referenced by nothing but one ``track_artists`` link per
  malformed track): max(3, T/10,000) per reason (1 when T < 1000) — tracks: NULL id, non-base62 id,
  wrong-length id, popularity 150, popularity −3; audio features: 'n/a' in ``energy``, bad ``track_id``;
  artists: bad id.
- Cross-reference plants, per valid track: 20 % isrc_exact, 4 % isrc_fuzzy (Spotify side lower-case,
  hyphenated or spaced), 1 % shared ISRC (two MB recordings, the closer length expected; counted as
  isrc_exact), 8 % metadata_match (no ISRC match; same artist + title up to case / accents / release noise,
  length within ±2.5 s), decoys expected as no_match: 2 % same title by a MusicBrainz-only artist, 1 % same
  title and artist but length off by 35–120 s. Plus unrelated filler recordings (10 % of T) by
  MusicBrainz-only artists, 1 % of them with TAB / backslash / newline / CR in the title. 30 % of MB artists
  are accent-folded; half the recordings of multi-artist tracks are credited "A feat. B & C".

Determinism: every chunk draws from ``(seed, table, chunk)``; chunk sizes are fixed constants; IDs are
hashes of (seed, kind, index). Memory: O(T) small numpy arrays in ``catalog.Plan`` plus a few chunks.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

from jobs.sample import catalog, malformed, mbdump, playlists, real_layout, spec_layout
from jobs.sample import rates as R
from jobs.sample.sinks import publish, remove, temp_path

MANIFEST = "_sample_manifest.json"
TRUTH = "_sample_truth_xref.parquet"
LAYOUTS = ("real", "spec")
MB_ISRC_LAYOUTS = ("31", "legacy")


@dataclass(frozen=True)
class SampleSpec:
    tracks: int = 20_000
    seed: int = 42
    playlists: int = 0  # 0 → max(1, tracks // 10)
    layout: str = "real"  # "real" | "spec"
    compress: bool = False  # real layout only: ship .sqlite3.zst files (plain files removed)
    mb_isrc_layout: str = "31"  # "31" (5 isrc columns) | "legacy" (6 columns incl. source, SCHEMA_SEQUENCE 30)

    @property
    def playlist_count(self) -> int:
        return self.playlists or max(1, self.tracks // 10)

    def validate(self) -> None:
        if self.tracks < 1:
            raise ValueError(f"tracks must be >= 1, got {self.tracks}")
        if self.playlists < 0:
            raise ValueError(f"playlists must be >= 0, got {self.playlists}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.mb_isrc_layout not in MB_ISRC_LAYOUTS:
            raise ValueError(f"mb_isrc_layout must be one of {MB_ISRC_LAYOUTS}, got {self.mb_isrc_layout!r}")
        if self.compress and self.layout != "real":
            raise ValueError("compress=True applies to the real layout only (the spec assumed plain .db files)")


def compress_file(src: Path, dst: Path, level: int = 3) -> None:
    """Stream ``src`` into a zstd frame at ``dst`` (bounded memory; content size and checksum recorded).
    Written under a temporary name, renamed when complete."""
    tmp = temp_path(dst)
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=-1)
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            compressor.copy_stream(fin, fout, size=os.path.getsize(src), read_size=1 << 20, write_size=1 << 20)
        os.replace(tmp, dst)
    except BaseException:
        remove(tmp)
        raise


def _all_outputs(spotify_dir: Path) -> list[Path]:
    names = [*real_layout.FILES, *(f + ".zst" for f in real_layout.FILES), *spec_layout.FILES]
    return [spotify_dir / name for name in names]


def generate(spotify_dir: Path, musicbrainz_dir: Path, spec: SampleSpec) -> dict:
    """Write the sample (replacing any previous one in these folders) and return its manifest."""
    spec.validate()
    spotify_dir, musicbrainz_dir = Path(spotify_dir), Path(musicbrainz_dir)
    spotify_dir.mkdir(parents=True, exist_ok=True)
    musicbrainz_dir.mkdir(parents=True, exist_ok=True)
    plan = catalog.build_plan(spec.seed, spec.tracks, spec.playlist_count)

    writer: LayoutWriter
    if spec.layout == "real":
        writer = real_layout.RealLayoutWriter(spotify_dir)
    else:
        writer = spec_layout.SpecLayoutWriter(spotify_dir, spec.seed)
    mb_tmp = temp_path(musicbrainz_dir / "mbdump")
    remove(mb_tmp)
    mb = mbdump.MbDumpWriter(mb_tmp, plan, spec.mb_isrc_layout)
    truth_tmp = temp_path(spotify_dir / TRUTH)
    truth = pq.ParquetWriter(truth_tmp, mbdump.TRUTH_SCHEMA, compression="zstd")
    temps: list[Path] = []
    try:
        stats = _write_all(plan, writer, mb, truth)
        truth.close()
        finished = writer.close()
        mb.close(mbdump.SCHEMA_SEQUENCE[spec.mb_isrc_layout])
        files = {}
        for name, tmp in finished.items():
            temps.append(tmp)
            if spec.compress:
                zst = temp_path(spotify_dir / (name + ".zst"))
                temps.append(zst)
                compress_file(tmp, zst)
                remove(tmp)
                files[name + ".zst"] = zst
            else:
                files[name] = tmp
        manifest = _manifest(spec, plan, writer, mb, stats, sorted(files))
        # Publish: drop the old manifest first, so a crash here never pairs it with new files.
        remove(spotify_dir / MANIFEST)
        for path in _all_outputs(spotify_dir):
            if path.name not in files:
                remove(path)
        for name, tmp in files.items():
            publish(tmp, spotify_dir / name)
        publish(truth_tmp, spotify_dir / TRUTH)
        publish(mb_tmp, musicbrainz_dir / "mbdump")
        manifest_tmp = temp_path(spotify_dir / MANIFEST)
        manifest_tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        publish(manifest_tmp, spotify_dir / MANIFEST)
        return manifest
    except BaseException:
        writer.abort()
        mb.abort()
        truth.close()
        for path in [*temps, truth_tmp, mb_tmp]:
            remove(path)
        raise


class LayoutWriter(Protocol):
    """What ``real_layout.RealLayoutWriter`` and ``spec_layout.SpecLayoutWriter`` both accept."""

    def available_markets(self, table: pa.Table) -> None: ...
    def artists(self, artists: pa.Table, genres: pa.Table, genres_json: pa.Array) -> None: ...
    def tracks(self, tracks: pa.Table, track_artists: pa.Table, albums: pa.Table, artist_albums: pa.Table
               ) -> None: ...
    def audio_features(self, table: pa.Table) -> None: ...
    def playlists_chunk(self, playlists: pa.Table, rows: pa.Table, kind: np.ndarray, repeat: np.ndarray) -> None: ...
    def row_counts(self) -> dict[str, dict[str, int]]: ...
    def close(self) -> dict[str, Path]: ...
    def abort(self) -> None: ...


def _write_all(plan: catalog.Plan, writer: LayoutWriter, mb: mbdump.MbDumpWriter, truth: pq.ParquetWriter
               ) -> Counter:
    """Every pass in order: markets, artists, tracks (+albums, features, MusicBrainz, truth), malformed
    rows, playlists. Returns the accumulated category counts."""
    stats: Counter = Counter()
    writer.available_markets(pa.table({
        "rowid": np.arange(1, len(catalog.AVAILABLE_MARKETS) + 1),
        "available_markets": pa.array(catalog.AVAILABLE_MARKETS),
    }))
    for k in range(plan.artist_chunks):
        artists, genres, genres_json = catalog.artist_chunk(plan, k)
        stats["artists_with_genres"] += len(np.unique(genres["artist_rowid"].to_numpy()))
        writer.artists(artists, genres, genres_json)
    bad_artists = malformed.malformed_artists(plan)
    no_genres = pa.table({"artist_rowid": pa.array([], pa.int64()), "genre": pa.array([], pa.string())})
    writer.artists(bad_artists, no_genres, pa.array(["[]"] * bad_artists.num_rows))

    ordinal = np.zeros(plan.artists, dtype=np.int32)
    for k in range(plan.track_chunks):
        chunk = catalog.track_chunk(plan, k, ordinal)
        writer.tracks(chunk.tracks, chunk.track_artists, chunk.albums, chunk.artist_albums)
        writer.audio_features(chunk.audio_features)
        table = mb.plant(chunk, k)
        truth.write_table(table)
        for item in pc.value_counts(table["expected_method"]).to_pylist():
            stats[f"truth_{item['values']}"] += item["counts"]
        stats["truth_rows"] += table.num_rows
        stats["track_artists_valid"] += chunk.track_artists.num_rows
        stats.update(chunk.stats)
    bad_tracks, bad_links, reasons = malformed.malformed_tracks(plan)
    empty_albums = pa.table({"rowid": pa.array([], pa.int64())})
    writer.tracks(bad_tracks, bad_links, empty_albums, empty_albums)
    stats["track_artists_malformed"] += bad_links.num_rows
    stats.update({f"track_malformed_{r}": n for r, n in reasons.items()})
    bad_features, af_reasons = malformed.malformed_audio_features(plan)
    for table in bad_features:
        writer.audio_features(table)
    stats.update({f"af_malformed_{r}": n for r, n in af_reasons.items()})

    lengths = []
    for k in range(plan.playlist_chunks):
        chunk = playlists.playlist_chunk(plan, k)
        writer.playlists_chunk(chunk.playlists, chunk.playlist_tracks, chunk.kind, chunk.repeat)
        stats.update(chunk.stats)
        lengths.append(pc.min_max(chunk.playlists["tracks_total"]).as_py())
    stats["length_min"] = min(x["min"] for x in lengths)
    stats["length_max"] = max(x["max"] for x in lengths)
    return stats


def _manifest(spec: SampleSpec, plan: catalog.Plan, writer: LayoutWriter, mb: mbdump.MbDumpWriter, s: Counter,
              files: list[str]) -> dict:
    """Exact counts of everything written (tests assert bronze rows = written − documented exclusions)."""
    n_bad = plan.n_malformed
    track_reasons = {r: s[f"track_malformed_{r}"] for r in R.TRACK_MALFORMED_REASONS}
    af_reasons = {r: s[f"af_malformed_{r}"] for r in R.AF_MALFORMED_REASONS}
    kinds = {name: s[f"rows_{name}"] for name in playlists.ROW_KIND_NAMES}
    rows_total = sum(kinds.values())
    album_types = np.bincount(plan.album_type, minlength=3)
    manifest: dict[str, Any] = {
        "generator": "jobs.sample.generator",
        "generator_version": R.GENERATOR_VERSION,
        "seed": spec.seed,
        "spec": asdict(spec),
        "layout": spec.layout,
        "compressed": spec.compress,
        "files": {
            "spotify": files,
            "musicbrainz": [f"mbdump/{f}" for f in (*mbdump.FILES, "SCHEMA_SEQUENCE", "TIMESTAMP",
                                                    "REPLICATION_SEQUENCE")],
            "truth": TRUTH,
        },
        "tables": writer.row_counts(),
        "artists": {
            "rows": plan.artists + n_bad,
            "valid": plan.artists,
            "malformed": {r: n_bad for r in R.ARTIST_MALFORMED_REASONS},
            "with_genres": s["artists_with_genres"],
            "without_genres": plan.artists - s["artists_with_genres"],
        },
        "albums": {
            "rows": plan.n_albums,
            "by_type": {name: int(album_types[i]) for i, name in enumerate(R.ALBUM_TYPE_NAMES)},
        },
        "tracks": {
            "rows": plan.tracks + sum(track_reasons.values()),
            "valid": plan.tracks,
            "malformed": track_reasons,
            "multi_artist": s["multi_artist"],
            "feat_in_title": s["feat_in_title"],
            "release_noise": s["release_noise"],
            "isrc": {
                "null": s["isrc_null"],
                "invalid": s["isrc_invalid"],
                "non_canonical_valid": s["isrc_fuzzy_written"],
                "canonical": plan.tracks - s["isrc_null"] - s["isrc_invalid"] - s["isrc_fuzzy_written"],
            },
            "popularity_below_20": int((plan.track_pop < 20).sum()),
        },
        "track_artists": {
            "rows": s["track_artists_valid"] + s["track_artists_malformed"],
            "of_valid_tracks": s["track_artists_valid"],
            "of_malformed_tracks": s["track_artists_malformed"],
        },
        "audio_features": {
            "rows": plan.tracks + sum(af_reasons.values()),
            "valid": plan.tracks,
            "null_response": s["af_null_response"],
            "key_minus_1": s["af_key_minus_1"],
            "malformed": af_reasons,
        },
        "playlists": {
            "rows": plan.playlists,
            "mixed_genre": s["mixed_genre"],
            "length_lt_5": s["length_lt_5"],
            "length_gt_500": s["length_gt_500"],
            "length_min": s["length_min"],
            "length_max": s["length_max"],
        },
        "playlist_tracks": {
            "rows": rows_total,
            "with_track_rowid": kinds["track"] + kinds["dangling_track_rowid"],
            "resolvable_track_rows": kinds["track"],
            "ghost": kinds["ghost"],
            "episodes": kinds["episode"],
            "locals": kinds["local"],
            "unresolvable": {
                "null_without_id": kinds["null_without_id"],
                "dangling_track_rowid": kinds["dangling_track_rowid"],
                "total": kinds["null_without_id"] + kinds["dangling_track_rowid"],
            },
            "duplicate_track_occurrences": s["repeat_track"],
            "duplicate_ghost_occurrences": s["repeat_ghost"],
            "planted_duplicates": s["planted_repeats"],
            "added_at_zero": s["added_at_zero"],
            "ghost_pool": plan.ghost_pool,
            "episode_pool": plan.episode_pool,
        },
        "musicbrainz": {
            "schema_sequence": mbdump.SCHEMA_SEQUENCE[spec.mb_isrc_layout],
            "isrc_layout": spec.mb_isrc_layout,
            "isrc_columns": 6 if spec.mb_isrc_layout == "legacy" else 5,
            "rows": {name: mb.rows[name] for name in mbdump.FILES},
            **{key: mb.stats[key] for key in sorted(mb.stats)},
        },
        "xref_truth": {
            "rows": s["truth_rows"],
            "by_method": {m: s[f"truth_{m}"] for m in ("isrc_exact", "isrc_fuzzy", "metadata_match", "no_match")},
            "by_plant": {p: mb.stats[f"plant_{p}"] for p in R.PLANT_NAMES[1:]},
        },
    }
    if isinstance(writer, spec_layout.SpecLayoutWriter):
        manifest["spec_layout"] = {"dropped": dict(sorted(writer.dropped.items()))}
    return manifest


def main(argv: list[str] | None = None) -> None:
    """``python -m jobs.sample.generator SPOTIFY_DIR MUSICBRAINZ_DIR --tracks N``: outside Spark, for benchmarks."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Write a sample Spotify release and MusicBrainz dump.")
    parser.add_argument("spotify_dir", type=Path)
    parser.add_argument("musicbrainz_dir", type=Path)
    defaults = SampleSpec()
    parser.add_argument("--tracks", type=int, default=defaults.tracks)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--playlists", type=int, default=defaults.playlists)
    parser.add_argument("--layout", choices=LAYOUTS, default=defaults.layout)
    parser.add_argument("--compress", action="store_true")
    parser.add_argument("--mb-isrc-layout", choices=MB_ISRC_LAYOUTS, default=defaults.mb_isrc_layout)
    args = parser.parse_args(argv)
    spec = SampleSpec(args.tracks, args.seed, args.playlists, args.layout, args.compress, args.mb_isrc_layout)
    started = time.perf_counter()
    manifest = generate(args.spotify_dir, args.musicbrainz_dir, spec)
    print(json.dumps({"seconds": round(time.perf_counter() - started, 2), "tables": manifest["tables"],
                      "musicbrainz": manifest["musicbrainz"]["rows"]}, indent=2))


if __name__ == "__main__":
    main()
