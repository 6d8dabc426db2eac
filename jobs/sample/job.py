"""``sample`` job: write a fake Spotify release and MusicBrainz dump where the other jobs read theirs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs.sample.generator import MANIFEST, SampleSpec, generate
from lib.job import JobSpec, Run


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


def build(run: Run) -> None:
    """Generate the sample dump described by ``config.sample`` into ``paths.spotify`` / ``paths.musicbrainz``.

    Spark is not used on purpose: the outputs are SQLite files, which take a single writer, and the rows
    are produced by vectorised numpy/Arrow code on the driver (2M tracks: ~80 s of CPU), so distributing
    the work would only add shuffles in front of one file handle.
    """
    spec = spec_from_config(run.config)
    spotify, musicbrainz = Path(run.config.paths.spotify), Path(run.config.paths.musicbrainz)
    with run.timed("generate"):
        manifest = generate(spotify, musicbrainz, spec)
    run.metrics.update({
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
    })
    run.note(f"sample dump written to {spotify} and {musicbrainz / 'mbdump'}")


JOB = JobSpec(name="sample", body=build, config_sections=("sample",), skippable=False)


def run(spark: Any, config: Any) -> dict[str, Any]:
    """Notebook and test entry point (``spark`` may be None: the generator does not use it)."""
    from lib.job import execute

    return execute(JOB, spark, config)
