"""``sample`` job: write a fake Spotify release and MusicBrainz dump where the other jobs read theirs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from jobs.sample.generator import MANIFEST, SampleSpec, generate


def spec_from_config(config: Any) -> SampleSpec:
    sample = config.sample
    return SampleSpec(
        tracks=int(sample.tracks),
        seed=int(sample.seed),
        playlists=int(sample.playlists),
        layout=str(sample.layout),
        compress=bool(sample.compress),
        mb_isrc_layout=str(sample.mb_isrc_layout),
    )


def run(spark: Any, config: Any) -> dict:
    """Generate the sample dump described by ``config.sample`` into ``paths.spotify`` / ``paths.musicbrainz``.

    ``spark`` is unused on purpose: the outputs are SQLite files, which take a single writer, and the rows
    are produced by vectorised numpy/Arrow code on the driver (2M tracks: ~80 s of CPU), so
    distributing the work would only add shuffles in front of one file handle. The argument keeps the
    common ``run(spark, config)`` job signature.
    """
    spec = spec_from_config(config)
    spotify, musicbrainz = Path(config.paths.spotify), Path(config.paths.musicbrainz)
    started = time.perf_counter()
    manifest = generate(spotify, musicbrainz, spec)
    return {
        "job": "sample",
        "seconds": round(time.perf_counter() - started, 3),
        "layout": spec.layout,
        "tracks": manifest["tracks"]["rows"],
        "artists": manifest["artists"]["rows"],
        "albums": manifest["albums"]["rows"],
        "playlists": manifest["playlists"]["rows"],
        "playlist_tracks": manifest["playlist_tracks"]["rows"],
        "mb_recordings": manifest["musicbrainz"]["rows"]["recording"],
        "spotify_files": [str(spotify / name) for name in manifest["files"]["spotify"]],
        "musicbrainz_dir": str(musicbrainz / "mbdump"),
        "manifest": str(spotify / MANIFEST),
    }
