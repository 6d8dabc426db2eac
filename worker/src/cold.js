/**
 * Layer 4, the R2 cold tier: SQLite shards range-partitioned by spotify_id, listed in manifest.json.
 *
 * The spec's sketch loads one multi-GB database per request; a Worker has 128 MB. Here the manifest is
 * read once per isolate (re-read after MANIFEST_CACHE_MS), a binary search picks the one shard whose
 * [first_id, last_id] holds the id, only that object is fetched, checked against the manifest's size
 * and sha256, opened with sql.js and kept open (LRU within SHARD_CACHE_BYTES) for later lookups.
 */
import { FEATURE_FIELDS, MANIFEST_CACHE_MS, R2_MANIFEST_KEY, SHARD_CACHE_BYTES } from "./constants.js";
import { unavailable } from "./http.js";
import { sqlJs } from "./sqlite.js";

const TRACK_COLUMNS = ["spotify_id", ...FEATURE_FIELDS, "title", "artist", "isrc", "album_id", "release_year"];

/** @type {{manifest: any, loadedAt: number} | null} */
let manifestState = null;
/** @type {Promise<any> | null} */
let manifestLoading = null;
/** @type {Map<string, {db: any, statement: any, bytes: number}>} key → open shard, least recently used first */
const openShards = new Map();
/** @type {Map<string, Promise<any>>} */
const loadingShards = new Map();

/** @param {string} message */
const manifestError = (message) => unavailable(`R2 ${R2_MANIFEST_KEY}: ${message}`);

/** Checks the manifest's shape and order once, so a lookup can trust it. */
export function validateManifest(manifest) {
  if (!manifest || typeof manifest !== "object" || !Array.isArray(manifest.shards)) {
    throw manifestError("no shards array");
  }
  manifest.shards.forEach((s, i) => {
    for (const field of ["key", "first_id", "last_id", "sha256"]) {
      if (typeof s?.[field] !== "string") throw manifestError(`shards[${i}].${field} is not a string`);
    }
    if (!Number.isInteger(s.bytes) || s.bytes <= 0) throw manifestError(`shards[${i}].bytes is not a positive integer`);
    if (s.first_id > s.last_id) throw manifestError(`shards[${i}] has first_id > last_id`);
    if (i > 0 && manifest.shards[i - 1].last_id >= s.first_id) {
      throw manifestError(`shards[${i}] is not sorted after shards[${i - 1}] (ranges must not overlap)`);
    }
  });
  return manifest;
}

/** The manifest, cached per isolate; when its version changes the open shards are dropped. */
export async function getManifest(env) {
  if (manifestState && Date.now() - manifestState.loadedAt < MANIFEST_CACHE_MS) return manifestState.manifest;
  manifestLoading ??= (async () => {
    const object = await env.SPOTIFY_STORAGE.get(R2_MANIFEST_KEY);
    if (!object) throw manifestError("missing (the cold tier is not published)");
    let manifest;
    try {
      manifest = JSON.parse(await object.text());
    } catch {
      throw manifestError("not valid JSON");
    }
    validateManifest(manifest);
    if (manifestState && manifestState.manifest.version !== manifest.version) closeAllShards();
    manifestState = { manifest, loadedAt: Date.now() };
    return manifest;
  })().finally(() => {
    manifestLoading = null;
  });
  return manifestLoading;
}

/**
 * The one shard with first_id ≤ id ≤ last_id, or null (the id is in a gap or outside every range).
 * Shards are sorted by first_id and do not overlap (validateManifest).
 */
export function findShard(shards, id) {
  let lo = 0;
  let hi = shards.length - 1;
  let candidate = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (shards[mid].first_id <= id) {
      candidate = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  if (candidate < 0 || id > shards[candidate].last_id) return null;
  return shards[candidate];
}

function closeAllShards() {
  for (const shard of openShards.values()) closeShard(shard);
  openShards.clear();
}

function closeShard(shard) {
  shard.closed = true;
  try {
    shard.statement.free();
    shard.db.close();
  } catch (e) {
    console.warn(`closing a shard: ${e?.message ?? e}`);
  }
}

async function sha256Hex(buffer) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", buffer));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function loadShard(env, entry) {
  const object = await env.SPOTIFY_STORAGE.get(entry.key);
  if (!object) throw unavailable(`R2 ${entry.key} is listed in ${R2_MANIFEST_KEY} but missing`);
  const buffer = await object.arrayBuffer();
  if (buffer.byteLength !== entry.bytes) {
    throw unavailable(`R2 ${entry.key}: ${buffer.byteLength} bytes, ${R2_MANIFEST_KEY} says ${entry.bytes}`);
  }
  if ((await sha256Hex(buffer)) !== entry.sha256.toLowerCase()) {
    throw unavailable(`R2 ${entry.key}: sha256 differs from ${R2_MANIFEST_KEY}`);
  }
  const SQL = await sqlJs();
  let db;
  try {
    db = new SQL.Database(new Uint8Array(buffer));
    const statement = db.prepare(`SELECT ${TRACK_COLUMNS.join(", ")} FROM tracks WHERE spotify_id = ?`);
    return { db, statement, bytes: entry.bytes };
  } catch (e) {
    db?.close();
    throw unavailable(`R2 ${entry.key}: not a readable shard (${e?.message ?? e})`);
  }
}

/** Opens (or reuses) a shard, evicting the least recently used ones beyond SHARD_CACHE_BYTES. */
async function openShard(env, entry) {
  const open = openShards.get(entry.key);
  if (open) {
    openShards.delete(entry.key);
    openShards.set(entry.key, open);
    return open;
  }
  let loading = loadingShards.get(entry.key);
  if (!loading) {
    loading = loadShard(env, entry).then((shard) => {
      openShards.set(entry.key, shard);
      let total = 0;
      for (const s of openShards.values()) total += s.bytes;
      for (const [key, s] of openShards) {
        if (total <= SHARD_CACHE_BYTES || key === entry.key) break;
        closeShard(s);
        openShards.delete(key);
        total -= s.bytes;
      }
      return shard;
    }).finally(() => loadingShards.delete(entry.key));
    loadingShards.set(entry.key, loading);
  }
  return loading;
}

/**
 * The shard row of a track, or null when no shard holds it.
 * @returns {Promise<{row: Record<string, any>, shard: string} | null>}
 */
export async function coldLookup(env, id) {
  const manifest = await getManifest(env);
  const entry = findShard(manifest.shards, id);
  if (!entry) return null;
  let shard = await openShard(env, entry);
  if (shard.closed) shard = await openShard(env, entry); // evicted by a concurrent load meanwhile
  const statement = shard.statement;
  try {
    statement.bind([id]);
    if (!statement.step()) return null;
    return { row: statement.getAsObject(), shard: entry.key };
  } finally {
    statement.reset();
  }
}
