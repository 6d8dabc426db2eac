// GET /tracks/{id}/similar: precomputed (KV, D1), Vectorize fan-out (stand-in), co-occurrence.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { normalizeAudioFeatures } from "../src/vector.js";
import { bruteForce, eventually, publishedSource, startWorker, unknownId, unprecomputedTrack } from "./helpers.js";

let w;
let src;
before(async () => {
  [w, src] = await Promise.all([startWorker(), publishedSource()]);
});
after(() => w?.close());

const precomputed = (id) => src.d1(`SELECT similar_spotify_id AS spotify_id, similarity_score AS score, rank
  FROM precomputed_similar WHERE seed_spotify_id = ? ORDER BY rank`, [id]);
const seeds = () => src.d1("SELECT DISTINCT seed_spotify_id AS id FROM precomputed_similar ORDER BY 1")
  .map((r) => r.id);

function assertSameRanking(actual, expected, what) {
  assert.deepEqual(actual.map((r) => [r.spotify_id, r.rank]), expected.map((r) => [r.spotify_id, r.rank]), what);
  actual.forEach((r, i) => {
    assert.ok(Math.abs(r.score - expected[i].score) < 1e-9, `${what}: score of ${r.spotify_id}`);
  });
}

/**
 * What an exact Vectorize answers the Worker's fan-out: each index's top min(limit + 1, 100) (topK's limit),
 * merged by score, the seed dropped — so an indexed seed asked for 100 on one index gets 99.
 */
function fanOut(query, limit, seed) {
  const topK = Math.min(limit + 1, 100);
  const merged = src.shardMap.indexes.flatMap((name) => bruteForce(
    new Map([...src.vectors].filter(([, v]) => v.index === name)), query, topK, null));
  return bruteForce(new Map(merged.map((r) => [r.spotify_id, src.vectors.get(r.spotify_id)])), query, limit, seed);
}

describe("similar by audio", () => {
  test("the published KV top list and D1 precomputed rows agree (both in rank order)", () => {
    const both = seeds().filter((id) => src.kv.has(`spotify:topsim:${id}`));
    for (const id of both) assert.deepEqual(src.kvJson(`spotify:topsim:${id}`), precomputed(id), id);
  });

  test("KV spotify:topsim answers first, cut to the limit", async () => {
    const id = [...src.kv.keys()].find((k) => k.startsWith("spotify:topsim:"))?.slice("spotify:topsim:".length);
    assert.ok(id, "the publish has a spotify:topsim key");
    const published = src.kvJson(`spotify:topsim:${id}`);
    const res = await w.get(`/tracks/${id}/similar?limit=3`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { spotify_id: id, by: "audio", source: "kv", results: published.slice(0, 3) });
    assert.deepEqual((await w.get(`/tracks/${id}/similar`)).body.results, published.slice(0, 50));
  });

  test("D1 precomputed_similar answers when KV has no list, and re-warms KV", async () => {
    const id = seeds().at(-1);
    assert.ok(id, "the publish has precomputed_similar rows");
    await w.kv.delete(`spotify:topsim:${id}`);
    const res = await w.get(`/tracks/${id}/similar?limit=4`);
    assert.equal(res.status, 200);
    assert.equal(res.body.source, "d1");
    assert.deepEqual(res.body.results, precomputed(id).slice(0, 4));
    const warmed = await eventually(() => w.kv.get(`spotify:topsim:${id}`, "json"));
    assert.deepEqual(warmed, precomputed(id));
    assert.equal((await w.get(`/tracks/${id}/similar?limit=4`)).body.source, "kv");
  });

  test("an indexed track without a precomputed list: Vectorize over every index, merged by score", async () => {
    const id = await unprecomputedTrack(w, src, (i) => src.vectors.has(i));
    assert.ok(id, "an indexed track");
    const limit = Math.min(100, src.vectors.size - 1);
    const res = await w.get(`/tracks/${id}/similar?limit=${limit}`);
    assert.equal(res.status, 200);
    assert.equal(res.body.source, "vectorize");
    assertSameRanking(res.body.results, fanOut(src.vectors.get(id).values, limit, id), id);
    if (src.shardMap.shard_count > 1 && limit === src.vectors.size - 1) {
      const positions = new Set(res.body.results.map((r) => src.vectors.get(r.spotify_id).position));
      assert.equal(positions.size, src.shardMap.shard_count, "answers from every index");
    }
    // The answer is cached for an hour under spotify:sim:{id}:{limit}.
    const again = await w.get(`/tracks/${id}/similar?limit=${limit}`);
    assert.equal(again.body.source, "kv");
    assert.deepEqual(again.body.results, res.body.results);
    const { keys } = await w.kv.list({ prefix: `spotify:sim:${id}:${limit}` });
    assert.ok(Math.abs(keys[0].expiration - (Date.now() / 1000 + 3600)) < 600, "1 hour TTL");
  });

  test("a track not in Vectorize: its features (cold tier) give the query vector", async () => {
    const id = await unprecomputedTrack(w, src, (i) => !src.vectors.has(i));
    assert.ok(id, "a published track outside Vectorize");
    const res = await w.get(`/tracks/${id}/similar?limit=5`);
    assert.equal(res.status, 200);
    assert.equal(res.body.source, "vectorize");
    const query = normalizeAudioFeatures(src.shardRows.get(id).row);
    assertSameRanking(res.body.results, fanOut(query, 5, id), id);
    const logged = await eventually(() => w.d1.prepare("SELECT access_count FROM track_access_log WHERE spotify_id = ?")
      .bind(id).first());
    assert.ok(logged, "the feature lookup counted an access (a promotion candidate)");
  });

  test("the Worker's vector of a track equals the published one", () => {
    let checked = 0;
    for (const [id, v] of src.vectors) {
      const shard = src.shardRows.get(id);
      if (!shard) continue;
      const mine = normalizeAudioFeatures(shard.row);
      mine.forEach((x, i) => {
        assert.ok(Math.abs(x - v.values[i]) < 1e-6, `${id} component ${i}: ${x} vs ${v.values[i]}`);
      });
      checked++;
    }
    assert.ok(checked > 0);
  });

  test("unknown and malformed requests", async () => {
    assert.equal((await w.get(`/tracks/${unknownId(src)}/similar`)).status, 404);
    const id = [...src.shardRows.keys()][0];
    for (const q of ["limit=0", "limit=101", "limit=abc", "limit=-1", "limit=1.5", "by=lyrics", "by="]) {
      const res = await w.get(`/tracks/${id}/similar?${q}`);
      assert.equal(res.status, 400, q);
      assert.equal(typeof res.body.error, "string", q);
    }
    assert.equal((await w.get(`/tracks/not-an-id/similar`)).status, 400);
  });
});

describe("similar by playlists", () => {
  const pairs = (id) => src.d1(`SELECT CASE WHEN track_a = ?1 THEN track_b ELSE track_a END AS spotify_id, score,
      cooccurrence_count FROM playlist_cooccurrence WHERE track_a = ?1 OR track_b = ?1`, [id])
    .sort((x, y) => y.score - x.score || y.cooccurrence_count - x.cooccurrence_count
      || (x.spotify_id < y.spotify_id ? -1 : 1))
    .map((r, i) => ({ spotify_id: r.spotify_id, score: r.score, rank: i + 1 }));

  test("the co-occurrence partners from both sides of the pair, by combined score", async () => {
    const counts = src.d1(`SELECT id, COUNT(*) AS n FROM (SELECT track_a AS id FROM playlist_cooccurrence
      UNION ALL SELECT track_b FROM playlist_cooccurrence) GROUP BY id ORDER BY n DESC, id LIMIT 3`);
    assert.ok(counts.length > 0, "the publish has co-occurrence pairs");
    for (const { id } of counts) {
      for (const limit of [3, 50]) {
        const res = await w.get(`/tracks/${id}/similar?by=playlists&limit=${limit}`);
        assert.equal(res.status, 200);
        const expected = { spotify_id: id, by: "playlists", source: "d1", results: pairs(id).slice(0, limit) };
        assert.deepEqual(res.body, expected);
      }
    }
  });

  test("a known track without pairs answers an empty list; an unknown one 404", async () => {
    const lonely = src.d1(`SELECT spotify_id FROM spotify_mbid_xref WHERE spotify_id NOT IN
      (SELECT track_a FROM playlist_cooccurrence UNION SELECT track_b FROM playlist_cooccurrence) LIMIT 1`)[0];
    if (lonely) {
      const res = await w.get(`/tracks/${lonely.spotify_id}/similar?by=playlists`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.results, []);
    }
    assert.equal((await w.get(`/tracks/${unknownId(src)}/similar?by=playlists`)).status, 404);
  });
});
