// The R2 cold tier when what publish wrote is broken: a 503 naming the object, never a 500.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import { makeCold, publishedSource, startWorker } from "./helpers.js";

let w;
let src;
const touched = new Set();

before(async () => {
  [w, src] = await Promise.all([startWorker(), publishedSource()]);
});
after(() => w?.close());
beforeEach(() => w.restart()); // each case starts with empty per-isolate manifest and shard caches
afterEach(async () => {
  for (const key of touched) {
    const b = readFileSync(path.join(src.dir, "r2", ...key.split("/")));
    await w.r2.put(key, b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }
  touched.clear();
});

/** A track that only the cold tier can answer. */
async function coldId() {
  const id = [...src.shardRows.keys()].at(-1);
  await makeCold(w, id);
  return id;
}

describe("cold tier integrity", () => {
  test("a shard whose bytes differ from the manifest answers 503", async () => {
    const id = await coldId();
    const key = src.shardRows.get(id).shard;
    const changed = new Uint8Array(await (await w.r2.get(key)).arrayBuffer());
    changed[changed.length - 1] ^= 0xff;
    touched.add(key);
    await w.r2.put(key, changed.buffer);
    const res = await w.get(`/tracks/${id}/features`);
    assert.equal(res.status, 503);
    assert.match(res.body.error, new RegExp(`${key}.*sha256`));
  });

  test("a missing manifest answers 503", async () => {
    const id = await coldId();
    touched.add("manifest.json");
    await w.r2.delete("manifest.json");
    const res = await w.get(`/tracks/${id}/features`);
    assert.equal(res.status, 503);
    assert.match(res.body.error, /manifest\.json.*missing/);
  });

  test("a shard the manifest lists but R2 lacks answers 503 naming it", async () => {
    const id = await coldId();
    const key = src.shardRows.get(id).shard;
    touched.add(key);
    await w.r2.delete(key);
    const res = await w.get(`/tracks/${id}/features`);
    assert.equal(res.status, 503);
    assert.match(res.body.error, new RegExp(`${key}.*missing`));
  });

  test("a manifest whose shards are out of order answers 503", async () => {
    const id = await coldId();
    const manifest = JSON.parse(await (await w.r2.get("manifest.json")).text());
    manifest.shards.reverse();
    touched.add("manifest.json");
    await w.r2.put("manifest.json", JSON.stringify(manifest));
    const res = await w.get(`/tracks/${id}/features`);
    assert.equal(res.status, manifest.shards.length > 1 ? 503 : 200);
    if (res.status === 503) assert.match(res.body.error, /not sorted/);
  });

  test("a failing D1 does not fail a cold-tier answer (its write-back is logged and skipped)", async () => {
    const id = await coldId();
    await w.d1.prepare("ALTER TABLE spotify_audio_features_cache RENAME TO saf_away").run();
    try {
      const res = await w.get(`/tracks/${id}/features`);
      assert.equal(res.status, 200);
      assert.equal(res.body.source, "r2");
    } finally {
      await w.d1.prepare("ALTER TABLE saf_away RENAME TO spotify_audio_features_cache").run();
    }
  });

  test("after the repairs the same track answers from the cold tier", async () => {
    const id = await coldId();
    const res = await w.get(`/tracks/${id}/features`);
    assert.equal(res.status, 200);
    assert.equal(res.body.source, "r2");
  });
});
