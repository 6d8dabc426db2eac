// The Worker's answers equal the warehouse the pipeline published from (WORKER_GOLD, exported by
// export_gold.py when run-tests.sh is given WAREHOUSE_DIR): features = bronze spotify_audio_features (and
// bronze spotify_tracks' popularity), by=audio = gold/precomputed_similar, by=playlists =
// gold/playlist_cooccurrence in gold/cooccurrence_top's order, xref = gold/spotify_mbid_xref. Skipped on the
// fixture, which has no warehouse behind it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { goldExpectations, makeCold, publishedSource, startWorker } from "./helpers.js";

const gold = goldExpectations();
const skip = gold ? false : "no WAREHOUSE_DIR: the fixture has no warehouse behind it";
let w;
let src;

before(async () => {
  if (gold) [w, src] = await Promise.all([startWorker(), publishedSource()]);
});
after(() => w?.close());

const ranked = (rows) => rows.map((r, i) => ({ spotify_id: r.spotify_id, score: r.score, rank: i + 1 }));
const inD1 = (table, column, id) => src.d1(`SELECT 1 FROM ${table} WHERE ${column} = ?`, [id]).length > 0;

// D1 holds the matched tracks with an ISRC, the ISRC as the xref job normalises it (docs/publish-layout.md).
const published = (row) => ({ spotify_id: row.spotify_id, isrc: row.isrc_normalized ?? row.isrc, mbid: row.mbid,
  match_confidence: row.match_confidence, match_method: row.match_method });
const loaded = (row) => row.mbid !== null && row.isrc !== null;

describe("answers equal the gold tables", { skip }, () => {
  test("the R2 cold tier holds exactly the tracks with bronze features", () => {
    assert.deepEqual([...src.shardRows.keys()].sort(), gold.feature_ids);
  });

  test("features: every layer answers bronze's raw values", async () => {
    const ids = Object.keys(gold.features);
    assert.ok(ids.length > 0, "the gold sample has tracks");
    const sources = new Set();
    for (const [i, id] of ids.entries()) {
      // A third as published, a third with the KV key gone (D1 or R2), a third only in R2.
      if (i % 3 === 1) await w.kv.delete(`spotify:af:${id}`);
      if (i % 3 === 2) await makeCold(w, id);
      const res = await w.get(`/tracks/${id}/features`);
      assert.equal(res.status, 200, id);
      assert.deepEqual(res.body, { spotify_id: id, source: res.body.source, features: gold.features[id] }, id);
      if (i % 3 === 2) assert.equal(res.body.source, "r2", id);
      sources.add(res.body.source);
    }
    assert.ok(sources.has("kv") && sources.has("r2"), `answered by ${[...sources]}`);
  });

  test("similar by audio: gold/precomputed_similar in rank order, from KV and from D1", async () => {
    const seeds = Object.keys(gold.precomputed_similar);
    assert.ok(seeds.length > 0);
    for (const [i, id] of seeds.entries()) {
      const expected = gold.precomputed_similar[id];
      if (i % 2 === 1) await w.kv.delete(`spotify:topsim:${id}`);
      const res = await w.get(`/tracks/${id}/similar?limit=100`);
      assert.equal(res.status, 200, id);
      assert.equal(res.body.source, i % 2 === 1 ? "d1" : res.body.source, id);
      assert.deepEqual(res.body.results, expected.slice(0, 100), id);
      const few = await w.get(`/tracks/${id}/similar?limit=5`);
      assert.deepEqual(few.body.results, expected.slice(0, 5), id);
    }
  });

  test("similar by playlists: gold/playlist_cooccurrence by score; a hot track's list is its gold top K", async () => {
    const k = gold.cooccurrence_top_k;
    const features = new Set(gold.feature_ids);
    let hot = 0;
    for (const id of gold.sample) {
      const partners = gold.cooccurrence[id] ?? [];
      const res = await w.get(`/tracks/${id}/similar?by=playlists&limit=100`);
      if (partners.length === 0) {
        // no pairs: an empty list for a track the Worker knows (features or a match), else 404
        const known = features.has(id) || (gold.xref[id] && loaded(gold.xref[id]));
        assert.deepEqual([res.status, res.body.results], known ? [200, []] : [404, undefined], id);
        continue;
      }
      assert.equal(res.status, 200, id);
      const limit = Math.min(100, k);
      if (inD1("spotify_audio_features_cache", "spotify_id", id)) {
        // publish loads the top-K pairs of every track whose features D1 caches
        hot++;
        assert.deepEqual(res.body.results.slice(0, limit), ranked(partners).slice(0, limit), id);
      } else {
        // a cold track: the pairs other tracks' top K brought in, still gold's scores in gold's order
        const order = new Map(partners.map((p, i) => [p.spotify_id, i]));
        let last = -1;
        for (const r of res.body.results) {
          assert.ok(order.has(r.spotify_id), `${id}: ${r.spotify_id} is a gold pair`);
          assert.equal(r.score, partners[order.get(r.spotify_id)].score, `${id}: score of ${r.spotify_id}`);
          assert.ok(order.get(r.spotify_id) > last, `${id}: gold's order`);
          last = order.get(r.spotify_id);
        }
      }
    }
    assert.ok(hot > 0, "the sample has hot tracks with pairs");
  });

  test("xref by Spotify id: gold/spotify_mbid_xref's match, from KV and D1; unmatched 404", async () => {
    let matched = 0;
    for (const [i, [id, row]] of Object.entries(gold.xref).entries()) {
      if (i % 2 === 1) await w.kv.delete(`spotify:xref:${id}`);
      const res = await w.get(`/xref/spotify/${id}`);
      if (!loaded(row)) {
        assert.equal(res.status, 404, `${id} has no match (${row.match_method})`);
        continue;
      }
      matched++;
      assert.equal(res.status, 200, id);
      assert.deepEqual(res.body, published(row), id);
    }
    assert.ok(matched > 0, "the sample has matched tracks");
  });

  test("xref by ISRC, as Spotify spells it: every matched track of that code, best first", async () => {
    for (const [isrc, rows] of Object.entries(gold.xref_by_isrc)) {
      const spelled = rows[0].isrc;
      const res = await w.get(`/xref/isrc/${encodeURIComponent(spelled)}`);
      const expected = rows.filter(loaded).map(published)
        .sort((a, b) => b.match_confidence - a.match_confidence || (a.spotify_id < b.spotify_id ? -1 : 1));
      if (expected.length === 0) {
        assert.equal(res.status, 404, isrc);
        continue;
      }
      assert.equal(res.status, 200, `${spelled} (${isrc})`);
      assert.deepEqual(res.body, { isrc, matches: expected }, spelled);
    }
  });
});
