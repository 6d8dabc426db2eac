"""The report's sections, each from its tables (aggregated by Spark, ``aggregates``) or the run records
(``lib.runs.history``). A section whose table is absent says so instead of failing: the report describes
whatever the warehouse holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.report import aggregates, figures, publishing
from jobs.report.html import Fixed, Section, Table
from lib.console import rows_left_out, rows_out

BINS = 40
GENRES_SHOWN = 30
NO_MATCH = "no_match"  # jobs.xref.transforms.NO_MATCH: the method of a track without a recording


@dataclass
class Inputs:
    """The pinned input frames (None when the table is absent) and what the report reads besides them."""

    frames: dict[str, DataFrame | None]
    history: list[dict[str, Any]]
    settings: dict[str, Any]

    def get(self, table: str) -> DataFrame | None:
        return self.frames.get(table)


def _missing(section: Section, *tables: str) -> Section:
    return section.note(f"{' and '.join(tables)} not in the warehouse: run the job that writes it "
                        f"({', '.join(TABLE_JOBS.get(t, '?') for t in tables)}) to fill this section.")


TABLE_JOBS = {
    "gold/spotify_mbid_xref": "xref", "gold/playlist_cooccurrence": "cooccurrence",
    "gold/cooccurrence_top": "cooccurrence", "gold/audio_vectors": "vectors", "gold/precomputed_similar": "vectors",
    "gold/track_clusters": "graph", "bronze/spotify_tracks": "ingest",
}


def xref(inputs: Inputs) -> Section:
    section = Section("Cross-reference: match rates and confidence", "xref")
    frame = inputs.get("gold/spotify_mbid_xref")
    if frame is None:
        return _missing(section, "gold/spotify_mbid_xref")
    counts = aggregates.value_counts(frame, "match_method")
    total = sum(n for _, n in counts)
    section.add(Table(("match tier", "tracks", "share of all tracks"),
                      [(m, n, Fixed(n / total if total else None, "{:.2%}")) for m, n in counts],
                      f"{total:,} Spotify tracks in gold/spotify_mbid_xref"))
    if total:
        section.add(figures.bars([m for m, _ in counts], [round(n / total, 4) for _, n in counts],
                                 "Match rate by tier", "share of tracks", fmt="{:.2%}"))
    matched = frame.where(F.col("match_method") != NO_MATCH)
    hist = aggregates.histogram(matched, "match_confidence", BINS, by="match_method")
    if hist.empty:
        return section.note("No matched track: no confidence histogram.")
    return section.add(figures.histogram(hist, "Match confidence of matched tracks", "match_confidence"))


def cooccurrence(inputs: Inputs) -> Section:
    section = Section("Co-occurrence: PMI, Jaccard and score", "cooccurrence")
    pairs = inputs.get("gold/playlist_cooccurrence")
    if pairs is None:
        return _missing(section, "gold/playlist_cooccurrence")
    for column, label in (("pmi_score", "PMI"), ("jaccard_score", "Jaccard"), ("score", "combined score")):
        hist = aggregates.histogram(pairs, column, BINS)
        if hist.empty:
            return section.note("gold/playlist_cooccurrence holds no pair.")
        section.add(figures.histogram(hist, f"{label} of track pairs", column, log_y=column == "jaccard_score"))
    return section


def degrees(inputs: Inputs) -> Section:
    section = Section("Neighbour degree", "degree")
    pairs = inputs.get("gold/playlist_cooccurrence")
    if pairs is None:
        return _missing(section, "gold/playlist_cooccurrence")
    bins = aggregates.log_bins(aggregates.degrees(pairs), "degree")
    if bins.empty:
        return section.note("gold/playlist_cooccurrence holds no pair.")
    return section.add(
        figures.log_bins(bins, "Tracks by number of co-occurrence neighbours", "neighbours (power-of-two bins)"),
        Table(("neighbours", "tracks"), [(figures.bin_label(low), n) for low, n in zip(bins.lows, bins.counts)],
              "Distinct partners per track over all kept pairs (before the top-K cut)"))


def tiers(inputs: Inputs) -> Section:
    section = Section("Popularity tiers and popularity", "tiers")
    vectors = inputs.get("gold/audio_vectors")
    if vectors is None:
        return _missing(section, "gold/audio_vectors")
    counts = sorted(aggregates.value_counts(vectors, "tier"))
    total = sum(n for _, n in counts)
    shares = [(t, n, Fixed(n / total if total else None, "{:.2%}")) for t, n in counts]
    section.add(Table(("tier", "tracks", "share"), shares,
                      f"Tier thresholds: A ≥ {inputs.settings['tier_a']}, B ≥ {inputs.settings['tier_b']} popularity"))
    if not total:
        return section.note("gold/audio_vectors holds no track.")
    section.add(figures.bars([t for t, _ in counts], [n for _, n in counts], "Tracks per tier", "tracks"))
    hist = aggregates.histogram(vectors, "popularity", 20, by="tier")
    return section.add(figures.histogram(hist, "Popularity of tracks with audio features, by tier", "popularity"))


def genres(inputs: Inputs) -> Section:
    section = Section("Detected genres", "genres")
    vectors = inputs.get("gold/audio_vectors")
    if vectors is None:
        return _missing(section, "gold/audio_vectors")
    counts, some, none = aggregates.exploded_counts(vectors, "detected_genres", GENRES_SHOWN)
    section.note(f"{some:,} tracks with at least one detected genre, {none:,} with none.")
    if not counts:
        return section
    return section.add(figures.bars([g for g, _ in counts], [n for _, n in counts],
                                    f"Tracks per detected genre (top {GENRES_SHOWN})", "tracks", horizontal=True))


def clusters(inputs: Inputs) -> Section:
    section = Section("Graph clusters", "clusters")
    frame = inputs.get("gold/track_clusters")
    if frame is None:
        return _missing(section, "gold/track_clusters")
    bins, largest, count = aggregates.cluster_sizes(frame)
    if bins.empty:
        return section.note("gold/track_clusters holds no track.")
    return section.add(
        figures.log_bins(bins, f"Clusters by size ({count:,} clusters)", "tracks per cluster (power-of-two bins)"),
        Table(("cluster_id", "tracks"), largest, "The largest clusters"))


def similarity(inputs: Inputs) -> Section:
    section = Section("Audio kNN similarity", "knn")
    similar = inputs.get("gold/precomputed_similar")
    if similar is None:
        return _missing(section, "gold/precomputed_similar")
    hist = aggregates.histogram(similar, "similarity_score", BINS)
    if hist.empty:
        return section.note("gold/precomputed_similar holds no neighbour.")
    return section.add(figures.histogram(hist, "Cosine similarity of precomputed neighbours", "similarity_score"))


def examples(inputs: Inputs) -> Section:
    section = Section("Example neighbours of popular tracks", "examples")
    sources = {}
    top = inputs.get("gold/cooccurrence_top")
    if top is not None:
        sources["co-occurrence"] = (top, "track_id", "neighbor_id", "score")
    similar = inputs.get("gold/precomputed_similar")
    if similar is not None:
        sources["audio kNN"] = (similar, "seed_spotify_id", "similar_spotify_id", "similarity_score")
    if not sources:
        return _missing(section, "gold/cooccurrence_top", "gold/precomputed_similar")
    names = aggregates.catalog(inputs.get("bronze/spotify_tracks"), inputs.get("bronze/spotify_artists"),
                               inputs.get("gold/audio_vectors"))
    found = aggregates.example_neighbours(sources, names, inputs.settings["examples"], inputs.settings["neighbours"])
    if not found:
        return section.note("No track has neighbours yet.")
    labels = list(sources)
    for example in found:
        depth = max((len(example.lists[label]) for label in labels), default=0)
        header = ["rank"] + [f"{label}: {part}" for label in labels for part in ("track", "artist", "score")]
        rows = []
        for index in range(depth):
            row: list[Any] = [index + 1]
            for label in labels:
                entries = example.lists[label]
                entry = entries[index] if index < len(entries) else None
                row += ([entry["title"] or entry["track_id"], entry["artist"], round(float(entry["score"]), 4)]
                        if entry else [None, None, None])
            rows.append(row)
        caption = (f"{example.title or example.track_id} — {example.artist or '?'} "
                   f"(popularity {example.popularity if example.popularity is not None else '?'}, {example.track_id})")
        section.add(Table(header, rows, caption))
    return section


def _latest_final(history: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for summary in history:
        if summary.get("status") == "succeeded":
            latest[summary["job"]] = summary
    return latest


def left_out(inputs: Inputs) -> Section:
    section = Section("Rows left out, by reason", "left-out")
    latest = _latest_final(inputs.history)
    latest.pop("pipeline", None)  # its left_out is the sum of its jobs'
    if not latest:
        return section.note("No succeeded run in gold/_runs yet.")
    rows: list[tuple[Any, ...]] = []
    for job, summary in latest.items():
        reasons = [(table, reason, n) for table, by in (summary.get("left_out") or {}).items()
                   for reason, n in by.items()]
        if not reasons:
            rows.append((job, "–", "nothing left out", 0))
        rows += [(job, table, reason, n) for table, reason, n in sorted(reasons, key=lambda r: -r[2])]
    return section.add(Table(("job", "table", "reason", "rows"), rows,
                             "From the latest succeeded run of every job (gold/_runs)"))


def _started(summary: dict[str, Any]) -> dt.datetime | None:
    text = summary.get("started_at")
    return dt.datetime.fromisoformat(text) if text else None


def run_history(inputs: Inputs) -> Section:
    section = Section("Run history", "runs")
    finished = [s for s in inputs.history if s.get("status") not in ("running",) and _started(s) is not None]
    if not finished:
        return section.note("No finished run in gold/_runs yet.")
    series: dict[str, tuple[list[dt.datetime], list[float]]] = {}
    for summary in finished:
        if summary["job"] == "pipeline" or summary["status"] == "skipped" or summary.get("seconds") is None:
            continue
        xs, ys = series.setdefault(summary["job"], ([], []))
        xs.append(_started(summary))  # type: ignore[arg-type]
        ys.append(float(summary["seconds"]))
    if series:
        section.add(figures.lines(series, "Seconds per job run (runs that did the work; skipped runs in the table)",
                                  "seconds"))
    recent = finished[-inputs.settings["history_runs"]:]
    rows = [(s["job"], s["status"], s.get("started_at", "")[:19].replace("T", " "), s.get("seconds"),
             *((None, None) if s["status"] == "skipped" else (  # a skipped run's outputs are its predecessor's
                 rows_out(s.get("outputs") or {}),
                 rows_left_out(s.get("left_out") or {}))),
             s.get("code_version"))
            for s in reversed(recent)]
    return section.add(Table(("job", "status", "started (UTC)", "seconds", "rows out", "rows left out", "code"), rows,
                             f"The latest {len(recent)} of {len(finished)} finished runs"))


def publish(inputs: Inputs, footprint: publishing.Footprint | None) -> Section:
    section = Section("Published: D1 fill, Vectorize, KV, R2", "publish")
    if footprint is None:
        return section.note("No publish yet: no succeeded publish run in gold/_runs and no local publish folder "
                            f"at {inputs.settings['local_dir']}.")
    section.note(f"Source: {footprint.source}.")
    budget = footprint.d1_budget or 0
    if footprint.d1_bytes is not None:
        parts = [(t.name, float(t.bytes)) for t in footprint.d1_tables if t.bytes] or [("D1", footprint.d1_bytes)]
        if budget:
            section.add(figures.fill(parts, budget, "D1 fill"))
        section.add(Table(("D1 table", "rows", "bytes", "rows over budget", "overflow goes to"),
                          [(t.name, t.rows, t.bytes, t.overflow_rows, t.overflow_to) for t in footprint.d1_tables],
                          f"D1: {footprint.d1_bytes:,} of {budget:,} bytes budget"))
    section.add(Table(("service", "what", "count", "bytes"), [
        ("Vectorize", f"indexes: {', '.join(footprint.vectorize_indexes) or '–'}", footprint.vectors, None),
        ("KV", "keys", footprint.kv_keys, footprint.kv_bytes),
        ("R2", f"feature shards (holding {footprint.r2_tracks:,} tracks)" if footprint.r2_tracks is not None
         else "feature shards", footprint.r2_shards, footprint.r2_bytes),
    ], "Vectorize vectors, KV keys and R2 shards"))
    return section


def _cost_table(rows: list[publishing.CostRow], caption: str, spec: bool) -> Table:
    header = ["deployment", "vectors", *(f"{c} $" for c in publishing.COST_COLUMNS), "spec arithmetic $"]
    if spec:
        header.append("spec's table $")
    body = []
    for row in rows:
        line: list[Any] = [row.name, row.vectors, *(Fixed(row.dollars[c]) for c in publishing.COST_COLUMNS),
                           Fixed(row.spec_arithmetic)]
        if spec:
            line.append(Fixed(row.spec_total, "~{:,.0f}"))
        body.append(line)
    return Table(header, body, caption)


def costs(inputs: Inputs, footprint: publishing.Footprint | None) -> Section:
    from lib.cloudflare import pricing

    section = Section("Monthly Cloudflare cost", "cost")
    section.note(f"Prices: {pricing.SOURCE} (lib/cloudflare/pricing.py). '$' columns apply every free tier; "
                 "'spec arithmetic' deducts only the storage free tiers, as the spec's own table does. Reads depend "
                 "on traffic and are not included in the published rows.")
    section.add(_cost_table(publishing.deployment_rows(), "The spec's four deployments (its Monthly Cost Summary "
                            "usage: R2 200 GB with 5M reads, Vectorize holding the deployment's vectors)", spec=True))
    if footprint is None:
        return section.note("No publish yet: the published sizes cannot be priced.")
    return section.add(_cost_table(publishing.published_rows(footprint), "What was published (storage, plus the "
                                   "writes of the publish month when the run record has them), and the same D1, KV "
                                   "and R2 sizes with each deployment's vector count", spec=False))


BUILDERS: tuple[Callable[[Inputs], Section], ...] = (
    xref, cooccurrence, degrees, tiers, genres, clusters, similarity, examples, left_out, run_history)
