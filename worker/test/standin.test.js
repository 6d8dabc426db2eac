// The Vectorize stand-in (test support, not Cloudflare's service): the published NDJSON, exact cosine,
// the real binding's limits. Driven through a probe Worker that calls the binding as the Worker does.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { compatibilityDate, STANDIN_WORKER } from "../tools/miniflare-options.js";
import { bruteForce, publishedSource, startWorker } from "./helpers.js";

let w;
let probe;
let src;
let index;

const PROBE = `export default {
  async fetch(request, env) {
    const { op, args } = await request.json();
    try {
      return Response.json({ value: await env.VEC[op](...args) });
    } catch (e) {
      return Response.json({ error: String(e.message) });
    }
  },
};`;

const call = async (op, ...args) => {
  const res = await probe.fetch("http://probe/", { method: "POST", body: JSON.stringify({ op, args }) });
  return res.json();
};

before(async () => {
  src = await publishedSource();
  index = src.shardMap.indexes[0];
  w = await startWorker((options) => {
    options.workers.push({
      name: "probe",
      modules: true,
      script: PROBE,
      compatibilityDate: compatibilityDate(),
      wrappedBindings: { VEC: { scriptName: STANDIN_WORKER, bindings: { INDEX: index } } },
    });
    return options;
  });
  probe = await w.mf.getWorker("probe");
});
after(() => w?.close());

const own = () => new Map([...src.vectors].filter(([, v]) => v.index === index));

describe("Vectorize stand-in", () => {
  test("holds the index's published vectors and metadata", async () => {
    const mine = own();
    const info = await call("describe");
    const config = JSON.parse(readFileSync(path.join(src.dir, "vectorize", index, "index.json"), "utf8"));
    assert.equal(info.value.vectorCount, mine.size);
    assert.equal(info.value.dimensions, config.dimensions);
    const ids = [...mine.keys()].slice(0, 3);
    const got = (await call("getByIds", [...ids, "missing"])).value;
    assert.deepEqual(got.map((v) => v.id), ids);
    for (const v of got) {
      assert.deepEqual(v.metadata, mine.get(v.id).metadata);
      v.values.forEach((x, i) => assert.equal(x, mine.get(v.id).values[i]));
    }
  });

  test("query is exact cosine over its own index", async () => {
    const mine = own();
    const [id, v] = [...mine][0];
    const k = Math.min(10, mine.size);
    const res = (await call("query", v.values, { topK: k })).value;
    const expected = bruteForce(mine, v.values, k, null);
    assert.deepEqual(res.matches.map((m) => m.id), expected.map((e) => e.spotify_id));
    assert.equal(res.matches[0].id, id);
    assert.equal(res.count, k);
  });

  test("the real limits: topK ≤ 100, ≤ 20 with values or all metadata, the index's dimensions", async () => {
    const v = [...own().values()][0].values;
    assert.match((await call("query", v, { topK: 101 })).error, /topK/);
    assert.match((await call("query", v, { topK: 21, returnValues: true })).error, /topK/);
    assert.match((await call("query", v, { topK: 21, returnMetadata: "all" })).error, /topK/);
    assert.ok((await call("query", v, { topK: 100 })).value);
    const all = (await call("query", v, { topK: 20, returnMetadata: "all", returnValues: true })).value;
    assert.deepEqual(all.matches[0].metadata, own().get(all.matches[0].id).metadata);
    assert.equal(all.matches[0].values.length, v.length);
    assert.match((await call("query", v.slice(1), { topK: 3 })).error, /dimensions/);
  });

  test("indexed metadata and filters", async () => {
    const v = [...own().values()][0].values;
    const config = JSON.parse(readFileSync(path.join(src.dir, "vectorize", index, "index.json"), "utf8"));
    const indexed = (await call("query", v, { topK: 5, returnMetadata: "indexed" })).value;
    for (const m of indexed.matches) {
      for (const key of Object.keys(m.metadata)) assert.ok(key in config.metadata_indexes, key);
    }
    const popular = (await call("query", v, { topK: 100, filter: { popularity: { $gte: 50 } } })).value;
    const expected = [...own().values()].filter((x) => x.metadata.popularity >= 50).length;
    assert.equal(popular.count, Math.min(100, expected));
    assert.match((await call("query", v, { topK: 3, filter: { popularity: { $regex: "x" } } })).error, /\$regex/);
  });

  test("writes: ≤ 1000 vectors per call, ids ≤ 64 bytes, metadata ≤ 10 KiB", async () => {
    const dims = [...own().values()][0].values.length;
    const values = Array.from({ length: dims }, (_, i) => (i + 1) / dims);
    const many = Array.from({ length: 1001 }, (_, i) => ({ id: `v${i}`, values }));
    assert.match((await call("upsert", many)).error, /1000/);
    assert.match((await call("upsert", [{ id: "x".repeat(65), values }])).error, /64 bytes/);
    const big = { id: "big", values, metadata: { s: "x".repeat(10 * 1024) } };
    assert.match((await call("upsert", [big])).error, /metadata/);
    assert.ok((await call("upsert", [{ id: "promoted-one", values, metadata: { promoted: true } }])).value.mutationId);
    const hit = (await call("query", values, { topK: 1 })).value;
    assert.equal(hit.matches[0].id, "promoted-one");
    await call("deleteByIds", ["promoted-one"]);
    assert.deepEqual((await call("getByIds", ["promoted-one"])).value, []);
  });
});
