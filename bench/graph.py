"""Benchmark: lib.graph (label propagation, connected components as Spark DataFrame rounds) against
igraph on one core, on the same planted-community graphs.

    .venv/bin/python bench/graph.py                    # 100K and 1M edges
    .venv/bin/python bench/graph.py 100000 1000000 5000000
    .venv/bin/python bench/graph.py --real /work/shared/data/real/mackorone_playlist_tracks_2021-05-09.csv

Each graph is generated once (numpy, fixed seed) and written as Parquet (src, dst, weight): vertices in
communities of ``COMMUNITY``, mean degree ``DEGREE``, ``LOCAL_SHARE`` of the edges inside a community
with score-like weights 0.3–0.9 (0.05–0.5 across), vertex ids shuffled; ``PAIR_SHARE`` of the vertices
form isolated pairs, so there are components besides the giant one. Then, in this process:

- spark:  ``Graph(None, edges).labelPropagation(20, "weight", 0.001)`` and ``connectedComponents()`` in
          a local[2] session (checkpoints under --dir), with per-round wall time and shuffle bytes;
- igraph: ``community_label_propagation(weights=…)`` and ``connected_components()`` (single-threaded C).

Checks: components equal igraph's exactly (same partition of the vertices); NMI of both label
propagations with the planted communities (scikit-learn). Spark runs once untimed on a small graph
first (JIT warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

SIZES = (100_000, 1_000_000)
WARMUP_EDGES = 20_000
SEED = 5
COMMUNITY, DEGREE, LOCAL_SHARE, PAIR_SHARE = 200, 20, 0.85, 0.02
MAX_ITERATIONS, CONVERGENCE = 20, 0.001


def planted_graph(edges: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(src, dst, weight, community per vertex id): about ``edges`` distinct undirected edges."""
    rng = np.random.default_rng(seed)
    n = max(COMMUNITY, int(2 * edges / DEGREE))
    community = rng.integers(0, max(1, n // COMMUNITY), n)
    members = np.argsort(community, kind="stable")
    starts = np.searchsorted(community[members], np.arange(community.max() + 2))
    paired = int(n * PAIR_SHARE) // 2 * 2
    core = n - paired
    draws = int(edges * 1.05)
    a = rng.integers(0, core, draws)
    local = rng.random(draws) < LOCAL_SHARE
    c = community[a]
    offset = starts[c] + (rng.random(draws) * (starts[c + 1] - starts[c])).astype(np.int64)
    b = np.where(local, members[offset], rng.integers(0, core, draws))
    b = np.where(b >= core, a, b)  # keep the pair vertices out of the core graph (dropped as self-loops)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keys, first = np.unique(lo.astype(np.int64) << 32 | hi, return_index=True)
    keep = (keys >> 32) != (keys & 0xFFFFFFFF)
    keys, first = keys[keep][: edges - paired // 2], first[keep][: edges - paired // 2]
    lo, hi = (keys >> 32).astype(np.int64), (keys & 0xFFFFFFFF).astype(np.int64)
    weight = np.where(local[first], rng.uniform(0.3, 0.9, len(first)), rng.uniform(0.05, 0.5, len(first)))
    pair_lo = np.arange(core, n, 2)
    lo, hi = np.concatenate([lo, pair_lo]), np.concatenate([hi, pair_lo + 1])
    weight = np.round(np.concatenate([weight, rng.uniform(0.3, 0.9, len(pair_lo))]), 6)
    community[core:] = community.max() + 1 + np.arange(paired) // 2
    ids = rng.permutation(n)  # vertex ids unrelated to communities
    truth = np.empty(n, np.int64)
    truth[ids] = community
    return ids[lo], ids[hi], weight, truth


def graph_files(base: Path, edges: int) -> tuple[Path, np.ndarray]:
    folder = base / f"edges{edges}"
    path, truth_path = folder / "edges.parquet", folder / "truth.npy"
    marker = folder / "_generated.json"
    wanted = {"edges": edges, "seed": SEED, "generator": 1}
    if not (marker.exists() and json.loads(marker.read_text()) == wanted):
        folder.mkdir(parents=True, exist_ok=True)
        src, dst, weight, truth = planted_graph(edges)
        pq.write_table(pa.table({"src": src, "dst": dst, "weight": weight}), path, row_group_size=1 << 20)
        np.save(truth_path, truth)
        marker.write_text(json.dumps(wanted))
    return path, np.load(truth_path)


def run_spark(spark: Any, path: Path, checkpoints: Path) -> dict[str, Any]:
    from bench.cooccurrence import SparkClock
    from lib.graph import Graph
    from lib.stage_metrics import phase

    phases: dict[str, Any] = {}
    clock = SparkClock(spark)
    graph = Graph(None, spark.read.parquet(str(path)), str(checkpoints),
                  phase=lambda name: phase(spark, name, phases, prefix="bench-graph"))
    lpa, labels = clock.measure(lambda: graph.labelPropagation(MAX_ITERATIONS, "weight", CONVERGENCE).toPandas())
    cc, components = clock.measure(lambda: graph.connectedComponents().toPandas())
    return {"labels": labels, "components": components, "lpa": lpa, "cc": cc,
            "history": graph.history, "converged": graph.converged, "phases": phases}


def run_igraph(path: Path, n: int) -> dict[str, Any]:
    import igraph as ig

    from bench.cooccurrence import process_measure

    table = pq.read_table(path)
    src, dst = table["src"].to_numpy(), table["dst"].to_numpy()
    build, graph = process_measure(lambda: ig.Graph(n=n, edges=np.column_stack([src, dst]).tolist()))
    weights = table["weight"].to_numpy().tolist()
    lpa, communities = process_measure(lambda: graph.community_label_propagation(weights=weights))
    cc, components = process_measure(graph.connected_components)
    return {"labels": np.array(communities.membership), "components": np.array(components.membership),
            "build": build, "lpa": lpa, "cc": cc}


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.column_stack([a, b]), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def measure(spark: Any, base: Path, edges: int) -> dict[str, Any]:
    from sklearn.metrics import normalized_mutual_info_score as nmi

    path, truth = graph_files(base, edges)
    n = len(truth)
    ours = run_spark(spark, path, base / f"edges{edges}" / "checkpoints")
    theirs = run_igraph(path, n)
    # Vertices with an edge (every vertex here has one), in id order.
    labels = ours["labels"].sort_values("id")
    ids = labels["id"].to_numpy()
    components = ours["components"].sort_values("id")["component"].to_numpy()
    rounds = ours["history"]["labelPropagation"]
    shuffle = [ours["phases"].get(f"label_propagation_{r['iteration']:02d}", {}).get("shuffle_write_bytes", 0)
               for r in rounds]
    cc_rounds = ours["history"]["connectedComponents"]
    cc_shuffle = [ours["phases"].get(f"connected_components_{r['iteration']:02d}", {}).get("shuffle_write_bytes", 0)
                  for r in cc_rounds]
    return {
        "edges": int(pq.read_metadata(path).num_rows),
        "vertices": n,
        "lpa_rounds": len(rounds),
        "lpa_converged": ours["converged"]["labelPropagation"],
        "lpa_seconds": round(ours["lpa"].wall, 1),
        "lpa_cpu_seconds": round(ours["lpa"].cpu, 1),
        "lpa_round_seconds": [r["seconds"] for r in rounds],
        "lpa_changed": [r["changed"] for r in rounds],
        "lpa_shuffle_mb_per_round": [round(b / 1e6, 1) for b in shuffle],
        "cc_rounds": len(cc_rounds),
        "cc_seconds": round(ours["cc"].wall, 1),
        "cc_cpu_seconds": round(ours["cc"].cpu, 1),
        "cc_shuffle_mb_per_round": [round(b / 1e6, 1) for b in cc_shuffle],
        "igraph_build_seconds": round(theirs["build"].wall, 2),
        "igraph_lpa_seconds": round(theirs["lpa"].wall, 2),
        "igraph_lpa_cpu_seconds": round(theirs["lpa"].cpu, 2),
        "igraph_cc_seconds": round(theirs["cc"].wall, 2),
        "components_equal_igraph": bool(same_partition(components, theirs["components"][ids])),
        "components": len(np.unique(components)),
        "nmi_spark": round(float(nmi(truth[ids], labels["label"].to_numpy())), 4),
        "nmi_igraph": round(float(nmi(truth, theirs["labels"])), 4),
        "clusters_spark": int(labels["label"].nunique()),
        "clusters_igraph": len(np.unique(theirs["labels"])),
    }


def run_real(spark: Any, csv_path: Path, base: Path, artists_shown: int = 4) -> dict[str, Any]:
    """The graph job (after cooccurrence, default settings) on real playlists: bronze tables built from the
    mackorone CSV (playlist rows, tracks with their artist lists, artists; no popularity, genres or
    features), so artist similarity, clusters and components run on real ids and real co-occurrence.
    Reports the largest clusters (their most frequent playlist names and primary artists) and the
    similar artists of each such cluster's most frequent artist."""
    import csv
    import shutil

    from jobs.cooccurrence import job as cooccurrence
    from jobs.graph import job as graph
    from lib import delta
    from lib.config import load_config
    from lib.schemas import BRONZE, conform

    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    root = base / "real"
    shutil.rmtree(root, ignore_errors=True)
    config = load_config(use_default_file=False, base_dir=root).with_overrides({
        "paths.warehouse": str(root / "warehouse"), "paths.work": str(root / "work"), "spark.master": "local[2]"})
    tracks = {r["track_id"]: r for r in rows}
    artists = {a: n for r in rows for a, n in zip(r["artist_ids"].split(";"), r["artist_names"].split(";"))}
    tables = {
        "spotify_playlist_tracks": [(r["playlist_id"], int(r["position"]), r["track_id"], None) for r in rows],
        "spotify_tracks": [(t, r["track_name"], r["album_id"], r["artist_ids"].split(";"), None, None, None, None,
                            None, None, None) for t, r in tracks.items()],
        "spotify_artists": [(a, n, None, None, []) for a, n in artists.items()],
    }
    for name, data in tables.items():
        frame = conform(spark.createDataFrame(data, BRONZE[name]), "bronze", name)
        delta.write(frame, delta.table_path(config.paths.warehouse, "bronze", name))
    cooccurrence.run(spark, config)
    result = graph.run(spark, config)
    summary = result["metrics"]

    def gold(name: str) -> Any:
        return delta.read(spark, delta.table_path(config.paths.warehouse, "gold", name)).toPandas()

    similar = gold("artist_similarity")
    clusters = gold("track_clusters")
    playlists_of_track: dict[str, set[str]] = {}
    for r in rows:
        playlists_of_track.setdefault(r["track_id"], set()).add(r["playlist_name"])
    primary = {t: r["artist_ids"].split(";")[0] for t, r in tracks.items()}
    largest = []
    for _, members in sorted(clusters.groupby("cluster_id"), key=lambda kv: (-len(kv[1]), kv[0]))[:6]:
        names = Counter(p for t in members["spotify_id"] for p in playlists_of_track[t])
        by_artist = sorted(Counter(primary[t] for t in members["spotify_id"]).items(), key=lambda kv: (-kv[1], kv[0]))
        largest.append({"tracks": len(members), "playlists": [n for n, _ in names.most_common(2)],
                        "artists": [artists[a] for a, _ in by_artist[:3]], "top_artist": by_artist[0][0]})
    neighbours = {
        artists[c["top_artist"]]: [
            f"{artists[b]} {score:.2f}" for b, score in similar[similar["artist_id"] == c["top_artist"]]
            .sort_values("rank")[["similar_artist_id", "score"]].head(5).itertuples(index=False)]
        for c in largest[:artists_shown]
    }
    return {
        "playlist_rows": len(rows), "playlists_qualifying": summary["playlists_qualifying"],
        "artists_kept": summary["artists_kept"], "artist_pairs_kept": summary["artist_pairs_kept"],
        "artist_similarity_rows": result["outputs"]["gold/artist_similarity"]["rows"], "tracks": summary["tracks"],
        "edges": summary["edges"], "clusters": summary["clusters"], "iterations": summary["iterations"],
        "converged": summary["converged"], "changed_per_round": [r["changed"] for r in summary["label_propagation"]],
        "largest_clusters": [{k: v for k, v in c.items() if k != "top_artist"} for c in largest],
        "components": summary["components"],
        "neighbours": neighbours, "seconds": result["seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=list(SIZES), help="edges per graph")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "aria-bench", "graph"),
                        help="where generated graphs and checkpoints live (graphs kept between runs)")
    parser.add_argument("--real", type=Path, help="instead: run the graph job on this mackorone playlist CSV")
    args = parser.parse_args(argv)

    from lib.config import load_config
    from lib.spark import build_session

    base = Path(args.dir)
    spark = build_session(load_config(use_default_file=False).with_overrides({"spark.master": "local[2]"}),
                          "bench-graph")
    if args.real:
        print(json.dumps(run_real(spark, args.real, base), indent=1, ensure_ascii=False))
        spark.stop()
        return 0
    started = time.perf_counter()
    measure(spark, base, WARMUP_EDGES)
    print(f"warm-up ({WARMUP_EDGES:,} edges, cold JVM): {time.perf_counter() - started:.1f} s", flush=True)
    results = []
    for edges in args.sizes:
        line = measure(spark, base, edges)
        results.append(line)
        print(json.dumps(line), flush=True)
    print("\n| edges | vertices | LPA rounds | LPA s (CPU s) | s per round | LPA shuffle MB per round | CC rounds "
          "| CC s (CPU s) | igraph LPA s (CPU s) | igraph CC s | NMI Spark / igraph | components = igraph |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        per_round = r["lpa_seconds"] / max(r["lpa_rounds"], 1)
        shuffle = np.mean(r["lpa_shuffle_mb_per_round"]) if r["lpa_shuffle_mb_per_round"] else 0
        print(f"| {r['edges']:,} | {r['vertices']:,} | {r['lpa_rounds']} | {r['lpa_seconds']} ({r['lpa_cpu_seconds']}) "
              f"| {per_round:.1f} | {shuffle:.0f} | {r['cc_rounds']} | {r['cc_seconds']} ({r['cc_cpu_seconds']}) "
              f"| {r['igraph_lpa_seconds']} ({r['igraph_lpa_cpu_seconds']}) | {r['igraph_cc_seconds']} "
              f"| {r['nmi_spark']} / {r['nmi_igraph']} | {r['components_equal_igraph']} |")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
