/**
 * Test support: the publish directory under test (env PUBLISH_DIR, else a fixture written by
 * make_publish_fixture.py), a Miniflare running the Worker on it, and independent readers of the
 * published source files (sql.js in Node for the SQLite shards and for the D1 import files, plain JSON
 * for KV and NDJSON) that the answers are compared with.
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Miniflare } from "miniflare";
import initSqlJs from "sql.js";
import { miniflareOptions, publishedShardMap, WORKER_DIR } from "../tools/miniflare-options.js";
import { loadPublish } from "../tools/load-publish.js";
import { loadedMarker } from "../tools/state.js";

process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
process.env.WRANGLER_SEND_METRICS ??= "false";

let publishDir = null;

/** The publish directory the tests read: $PUBLISH_DIR, or a fresh fixture. */
export function publishDirectory() {
  if (publishDir) return publishDir;
  if (process.env.PUBLISH_DIR) {
    publishDir = path.resolve(process.env.PUBLISH_DIR);
  } else {
    publishDir = path.join(mkdtempSync(path.join(tmpdir(), "aria-worker-")), "publish");
    execFileSync("python3", [path.join(WORKER_DIR, "test", "make_publish_fixture.py"), publishDir], { stdio: "pipe" });
  }
  if (!existsSync(path.join(publishDir, "d1"))) throw new Error(`${publishDir}: not a publish directory (no d1/)`);
  return publishDir;
}

/** Whether the tests run on make_publish_fixture.py's output (whose shape they know) rather than a pipeline's. */
export const isFixture = () => !process.env.PUBLISH_DIR || process.env.WORKER_FIXTURE === "1";

/**
 * A Miniflare running the Worker with the publish directory loaded: from a copy of the state
 * run-tests.sh prepared once ($WORKER_TEST_STATE, when it holds this publish), else loaded in memory.
 * `adjust` may change the Miniflare options first (add a worker, swap the Worker's modules).
 */
export async function startWorker(adjust = (options) => options) {
  const dir = publishDirectory();
  const indexes = publishedShardMap(dir)?.indexes ?? [];
  const prepared = process.env.WORKER_TEST_STATE;
  const marker = prepared ? loadedMarker(path.resolve(prepared), dir) : null;
  let persistRoot;
  if (marker) {
    persistRoot = mkdtempSync(path.join(tmpdir(), "aria-state-copy-"));
    cpSync(prepared, persistRoot, { recursive: true });
  }
  const options = adjust(miniflareOptions({ indexes, persistRoot }));
  const mf = new Miniflare(options);
  await mf.ready;
  const loaded = marker ? marker.summary : await loadPublish(mf, dir, { indexes });
  const get = async (pathname, init) => {
    const response = await mf.dispatchFetch(`http://worker.test${pathname}`, init);
    const text = await response.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: response.status, headers: response.headers, body };
  };
  let stopped = null;
  const handle = {
    mf,
    dir,
    persistRoot, // the state's directory (a copy of run-tests.sh's), or undefined when held in memory
    indexes,
    loaded,
    get,
    d1: await mf.getD1Database("SPOTIFY_CACHE"),
    kv: await mf.getKVNamespace("SPOTIFY_KV"),
    r2: await mf.getR2Bucket("SPOTIFY_STORAGE"),
    /** A fresh runtime (new isolates: empty per-isolate caches) over the same stored data. */
    async restart() {
      await mf.setOptions(options);
      handle.d1 = await mf.getD1Database("SPOTIFY_CACHE");
      handle.kv = await mf.getKVNamespace("SPOTIFY_KV");
      handle.r2 = await mf.getR2Bucket("SPOTIFY_STORAGE");
    },
    /** Stops workerd (its persisted files are then complete); the state stays on disk until close(). */
    async stop() {
      stopped ??= mf.dispose();
      await stopped;
    },
    async close() {
      await handle.stop();
      if (persistRoot) rmSync(persistRoot, { recursive: true, force: true });
    },
  };
  return handle;
}

let SQL = null;
async function sqlJs() {
  SQL ??= await initSqlJs();
  return SQL;
}

function rowsOf(db, sql, params = []) {
  const statement = db.prepare(sql);
  statement.bind(params);
  const rows = [];
  while (statement.step()) rows.push(statement.getAsObject());
  statement.free();
  return rows;
}

/** What publish wrote, read straight from the files (never through Miniflare or the Worker). */
export async function publishedSource(dir = publishDirectory()) {
  const S = await sqlJs();
  const d1Db = new S.Database();
  const d1Files = readdirSync(path.join(dir, "d1")).filter((f) => f.endsWith(".sql")).sort();
  // sql.js runs a whole script with SQLite's own statement splitter, independent of tools/sql-split.js.
  for (const f of d1Files) d1Db.exec(readFileSync(path.join(dir, "d1", f), "utf8"));

  const manifest = JSON.parse(readFileSync(path.join(dir, "r2", "manifest.json"), "utf8"));
  const shardRows = new Map(); // id → {row, shard}
  for (const entry of manifest.shards) {
    const db = new S.Database(readFileSync(path.join(dir, "r2", ...entry.key.split("/"))));
    for (const row of rowsOf(db, "SELECT * FROM tracks")) shardRows.set(row.spotify_id, { row, shard: entry.key });
    db.close();
  }

  const kv = new Map();
  const kvDir = path.join(dir, "kv");
  for (const f of existsSync(kvDir) ? readdirSync(kvDir).filter((f) => f.endsWith(".json")).sort() : []) {
    for (const item of JSON.parse(readFileSync(path.join(kvDir, f), "utf8"))) kv.set(item.key, item);
  }

  const shardMap = publishedShardMap(dir);
  const vectors = new Map(); // id → {index, position, values, metadata}
  (shardMap?.indexes ?? []).forEach((name, position) => {
    const folder = path.join(dir, "vectorize", name);
    for (const f of readdirSync(folder).filter((f) => f.endsWith(".ndjson")).sort()) {
      for (const line of readFileSync(path.join(folder, f), "utf8").split("\n")) {
        if (!line.trim()) continue;
        const r = JSON.parse(line);
        vectors.set(r.id, { index: name, position, values: r.values, metadata: r.metadata });
      }
    }
  });

  return {
    dir,
    manifest,
    shardMap,
    shardRows,
    kv,
    vectors,
    d1: (sql, params) => rowsOf(d1Db, sql, params),
    kvJson: (key) => (kv.has(key) ? JSON.parse(kv.get(key).value) : null),
  };
}

export const FEATURE_FIELDS = ["tempo", "energy", "danceability", "valence", "acousticness", "instrumentalness",
  "speechiness", "liveness", "loudness", "key", "mode", "time_signature", "duration_ms", "popularity"];

export const pickFeatures = (row) => Object.fromEntries(FEATURE_FIELDS.map((f) => [f, row[f] ?? null]));

/** Polls a D1 query until it returns a row (waitUntil work lands after the response), bounded. */
export async function eventually(fn, { tries = 50, delayMs = 20 } = {}) {
  for (let i = 0; i < tries; i++) {
    const value = await fn();
    if (value) return value;
    await new Promise((r) => setTimeout(r, delayMs));
  }
  return fn();
}

/** Exact cosine nearest neighbours over the published NDJSON (score desc, id asc), seed excluded. */
export function bruteForce(vectors, query, limit, exclude) {
  const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const qn = norm(query);
  return [...vectors.entries()]
    .filter(([id]) => id !== exclude)
    .map(([id, v]) => {
      const vn = norm(v.values);
      const dot = v.values.reduce((s, x, i) => s + x * query[i], 0);
      return { spotify_id: id, score: qn === 0 || vn === 0 ? 0 : dot / (qn * vn) };
    })
    .sort((a, b) => b.score - a.score || (a.spotify_id < b.spotify_id ? -1 : 1))
    .slice(0, limit)
    .map((r, i) => ({ ...r, rank: i + 1 }));
}

/**
 * A published track only the R2 cold tier holds: one publish left out of D1 and KV, else one made so (its D1
 * row and KV key deleted, as after a D1 eviction and a KV expiry — a small publish pre-warms every track).
 */
export async function coldTrack(w, source, used = new Set()) {
  const unused = [...source.shardRows.keys()].filter((i) => !used.has(i));
  const inD1 = (i) => source.d1("SELECT 1 FROM spotify_audio_features_cache WHERE spotify_id = ?", [i]).length > 0;
  const id = unused.find((i) => !source.kv.has(`spotify:af:${i}`) && !inD1(i)) ?? unused.at(-1);
  await makeCold(w, id);
  used.add(id);
  return id;
}

/** Leaves a track's features to the R2 cold tier: its D1 row and KV key deleted. */
export async function makeCold(w, id) {
  await w.d1.prepare("DELETE FROM spotify_audio_features_cache WHERE spotify_id = ?").bind(id).run();
  await w.kv.delete(`spotify:af:${id}`);
}

let gold;
/**
 * What the answers must equal, exported from the warehouse by export_gold.py (run-tests.sh sets WORKER_GOLD
 * when WAREHOUSE_DIR is set), or null (fixture mode: no warehouse behind the publish).
 */
export function goldExpectations() {
  if (!process.env.WORKER_GOLD) return null;
  gold ??= JSON.parse(readFileSync(process.env.WORKER_GOLD, "utf8"));
  return gold;
}

/**
 * A track without a precomputed neighbour list, satisfying `want`: one publish left out, else one made so
 * (its precomputed_similar rows and KV spotify:topsim deleted, as when the D1 budget leaves a seed out).
 */
export async function unprecomputedTrack(w, source, want) {
  const seeds = new Set(source.d1("SELECT DISTINCT seed_spotify_id AS id FROM precomputed_similar").map((r) => r.id));
  const candidates = [...source.shardRows.keys()].filter(want);
  const id = candidates.find((i) => !seeds.has(i) && !source.kv.has(`spotify:topsim:${i}`)) ?? candidates.at(-1);
  if (id === undefined) return undefined;
  await w.d1.prepare("DELETE FROM precomputed_similar WHERE seed_spotify_id = ?").bind(id).run();
  await w.kv.delete(`spotify:topsim:${id}`);
  return id;
}

/** A syntactically valid id that no publish holds (between two shards when there is a gap). */
export function unknownId(source) {
  for (let c = 0; c < 62; c++) {
    const id = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[c].repeat(22);
    const inXref = source.d1("SELECT 1 FROM spotify_mbid_xref WHERE spotify_id = ?", [id]).length > 0;
    if (!source.shardRows.has(id) && !inXref) return id;
  }
  throw new Error("no unknown id found");
}
