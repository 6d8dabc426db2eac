// GET /tracks/{id}/features through every cache layer, against the published files.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eventually, makeCold, pickFeatures, publishedSource, startWorker, unknownId } from "./helpers.js";

const AF_TTL = 7 * 24 * 3600; // spec CACHE_TTLS.audioFeatures
let w;
let src;
const used = new Set();

before(async () => {
  [w, src] = await Promise.all([startWorker(), publishedSource()]);
});
after(() => w?.close());

const d1Cached = (id) => src.d1("SELECT * FROM spotify_audio_features_cache WHERE spotify_id = ?", [id])[0];
const accessRow = (id) => w.d1.prepare("SELECT * FROM track_access_log WHERE spotify_id = ?").bind(id).first();
/** The access-log row once it counts `n` (it is written after the response), or null. */
const accessCount = (id, n) => eventually(async () => {
  const row = await accessRow(id);
  return row?.access_count === n ? row : null;
});

/** An unused track id of the shards satisfying `want`. */
function pick(want) {
  for (const id of src.shardRows.keys()) {
    if (!used.has(id) && want(id)) {
      used.add(id);
      return id;
    }
  }
  return null;
}

async function kvExpiration(key) {
  const { keys } = await w.kv.list({ prefix: key });
  return keys.find((k) => k.name === key)?.expiration;
}

function assertTtl(expiration, ttl) {
  const now = Date.now() / 1000;
  assert.ok(expiration !== undefined, "KV key has an expiration");
  assert.ok(Math.abs(expiration - (now + ttl)) < 600, `expiration ${expiration} ≈ now + ${ttl}`);
}

describe("features", () => {
  test("KV hit answers the published KV value, then layer 0 answers the repeat", async () => {
    const id = pick((i) => src.kv.has(`spotify:af:${i}`));
    assert.ok(id, "the publish has at least one spotify:af key");
    const published = src.kvJson(`spotify:af:${id}`);
    const first = await w.get(`/tracks/${id}/features`);
    assert.equal(first.status, 200);
    assert.deepEqual(first.body, { spotify_id: id, source: "kv", features: published.features });
    assert.deepEqual(first.body.features, pickFeatures(src.shardRows.get(id).row), "KV agrees with the R2 shard");
    assert.ok(await accessCount(id, 1), "access logged on a KV hit");

    const second = await w.get(`/tracks/${id}/features`);
    assert.deepEqual(second.body, { spotify_id: id, source: "request", features: published.features });
    assert.equal(second.headers.get("x-aria-source"), "request");
    assert.ok(await accessCount(id, 2), "access logged on a layer-0 hit");
  });

  test("D1 hit answers the D1 row and promotes it to KV with the 7-day TTL", async () => {
    const id = pick((i) => d1Cached(i));
    assert.ok(id, "the publish caches at least one track's features in D1");
    await w.kv.delete(`spotify:af:${id}`); // as if the KV entry had expired
    const res = await w.get(`/tracks/${id}/features`);
    assert.equal(res.status, 200);
    assert.equal(res.body.source, "d1");
    assert.deepEqual(res.body.features, pickFeatures(d1Cached(id)));
    assert.deepEqual(res.body.features, pickFeatures(src.shardRows.get(id).row), "D1 agrees with the R2 shard");
    assert.deepEqual(await w.kv.get(`spotify:af:${id}`, "json"), { spotify_id: id, features: res.body.features });
    assertTtl(await kvExpiration(`spotify:af:${id}`), AF_TTL);
    assert.ok(await accessCount(id, 1), "access logged on a D1 hit");
  });

  test("R2 hit reads only the shard holding the id, writes back to D1 and KV, logs the access", async () => {
    let id = pick((i) => !d1Cached(i) && !src.kv.has(`spotify:af:${i}`));
    if (!id) {
      // Every published track is hot: make one cold, as after a D1 eviction and a KV expiry.
      id = pick(() => true);
      await makeCold(w, id);
    }
    const { row, shard } = src.shardRows.get(id);
    const res = await w.get(`/tracks/${id}/features`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { spotify_id: id, source: "r2", features: pickFeatures(row) });
    assert.equal(res.headers.get("x-aria-shard"), shard);

    const written = await w.d1.prepare("SELECT * FROM spotify_audio_features_cache WHERE spotify_id = ?")
      .bind(id).first();
    assert.deepEqual(pickFeatures(written), pickFeatures(row));
    assert.ok(Math.abs(written.cached_at - Date.now() / 1000) < 600, "cached_at is now");
    assert.deepEqual(await w.kv.get(`spotify:af:${id}`, "json"), { spotify_id: id, features: pickFeatures(row) });
    assertTtl(await kvExpiration(`spotify:af:${id}`), AF_TTL);
    const logged = await accessCount(id, 1);
    assert.ok(logged, "access logged on an R2 hit");
    assert.equal(logged.vectorized, 0);
    assert.ok(Math.abs(logged.last_accessed - Date.now() / 1000) < 600);

    assert.equal((await w.get(`/tracks/${id}/features`)).body.source, "request");
  });

  test("every shard answers for its own ids (a sample of each)", async () => {
    for (const entry of src.manifest.shards) {
      const ids = [...src.shardRows.entries()].filter(([, v]) => v.shard === entry.key).map(([i]) => i);
      for (const id of [ids[0], ids[ids.length - 1], ids[ids.length >> 1]]) {
        const res = await w.get(`/tracks/${id}/features`);
        assert.equal(res.status, 200, `${id} in ${entry.key}`);
        assert.deepEqual(res.body.features, pickFeatures(src.shardRows.get(id).row), `${id} in ${entry.key}`);
      }
    }
  });

  test("unknown ids answer 404 and leave no access-log row", async () => {
    const gap = unknownId(src);
    // inside a shard's range but not in it: the first id with its last character lowered or raised
    const first = src.manifest.shards[0].first_id;
    const inside = [...src.shardRows.keys()].sort()
      .map((a) => a.slice(0, 21) + (a[21] === "z" ? "y" : "z"))
      .find((c) => !src.shardRows.has(c) && c > first);
    for (const id of [gap, inside]) {
      const res = await w.get(`/tracks/${id}/features`);
      assert.equal(res.status, 404, id);
      assert.match(res.body.error, /unknown track/);
      assert.equal(await accessRow(id), null);
    }
  });

  test("malformed ids answer 400 with a JSON error", async () => {
    for (const bad of ["abc", "0".repeat(23), "0".repeat(21) + "-", "%E2%82%AC".repeat(8), "%ZZ"]) {
      const res = await w.get(`/tracks/${bad}/features`);
      assert.equal(res.status, 400, bad);
      assert.equal(typeof res.body.error, "string");
      assert.match(res.headers.get("content-type"), /application\/json/);
    }
  });
});
