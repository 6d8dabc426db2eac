"""The numpy + faiss peer of the vectors job, as a faiss user would write it: one process.

    python bench/peers/knn_faiss.py OUT FEATURES_DIR TRACKS_DIR [--seeds 10000] [--k 100] [--threads N]

Reads bronze spotify_audio_features and spotify_tracks (Parquet folders; delta-rs writes plain Parquet),
joins popularity on track_id, builds the 13-component vector of the job's contract (jobs/vectors/layout.py:
(x − low) / (high − low) clamped to [0, 1], NULL → 0), writes (spotify_id, vector) to OUT/vectors.parquet,
L2-normalises, searches an exact ``faiss.IndexFlatIP`` with the ``--seeds`` most popular tracks (popularity
desc, id asc) for k + 1 neighbours, drops self and writes OUT/similar.parquet (zstd). faiss and numpy run
with ``--threads`` (default: the cores); the BLAS in use is printed (threadpoolctl) so a slow kernel shows.
The caller removes OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE from this process's environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# (column, low, high) in the contract's order; popularity comes from spotify_tracks.
COMPONENTS = (
    ("tempo", 60.0, 200.0), ("energy", 0.0, 1.0), ("danceability", 0.0, 1.0), ("valence", 0.0, 1.0),
    ("acousticness", 0.0, 1.0), ("instrumentalness", 0.0, 1.0), ("speechiness", 0.0, 1.0), ("liveness", 0.0, 1.0),
    ("loudness", -60.0, 0.0), ("key", 0.0, 11.0), ("mode", 0.0, 1.0), ("time_signature", 3.0, 7.0),
    ("popularity", 0.0, 100.0),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("features")
    parser.add_argument("tracks")
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    import faiss
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(args.threads)
    faiss.omp_set_num_threads(args.threads)
    print(json.dumps([{k: i.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                      for i in threadpool_info()]), file=sys.stderr)

    features = pq.read_table(args.features, columns=["track_id", *(c for c, _, _ in COMPONENTS[:-1])])
    tracks = pq.read_table(args.tracks, columns=["track_id", "popularity"])
    table = features.join(tracks, "track_id", join_type="left outer")
    ids = table.column("track_id").combine_chunks()
    vectors = np.empty((table.num_rows, len(COMPONENTS)), np.float32)
    for j, (name, low, high) in enumerate(COMPONENTS):
        raw = pc.fill_null(table.column(name).cast(pa.float64()), 0.0)
        vectors[:, j] = np.clip((raw.to_numpy() - low) / (high - low), 0.0, 1.0)
    os.makedirs(args.out, exist_ok=True)
    flat = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), len(COMPONENTS)).cast(pa.list_(pa.float32()))
    pq.write_table(pa.table({"spotify_id": ids, "vector": flat}), f"{args.out}/vectors.parquet", compression="zstd")

    popularity = pc.fill_null(table.column("popularity"), 0).to_numpy()
    order = pc.sort_indices(pa.table({"p": popularity, "id": ids}), [("p", "descending"), ("id", "ascending")])
    seeds = order.to_numpy()[: args.seeds]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    scores, found = index.search(unit[seeds], args.k + 1)
    not_self = found != seeds[:, None]
    rank = np.cumsum(not_self, axis=1)
    keep = not_self & (rank <= args.k)
    seed_rows = np.repeat(seeds, keep.sum(axis=1))
    pq.write_table(pa.table({
        "seed_spotify_id": ids.take(pa.array(seed_rows)), "similar_spotify_id": ids.take(pa.array(found[keep])),
        "similarity_score": pa.array(scores[keep].astype(np.float64)), "rank": pa.array(rank[keep].astype(np.int32)),
    }), f"{args.out}/similar.parquet", compression="zstd")
    return 0


if __name__ == "__main__":
    sys.exit(main())
