/**
 * GET /tracks/{id}/features: the spec's cache-through order — layer 0 (memory) → KV spotify:af:{id} →
 * D1 spotify_audio_features_cache → R2 shard. A D1 hit is promoted to KV, an R2 hit written back to D1
 * and KV (awaited, as in the spec: the next request must find it), and every answered lookup counts one
 * access in track_access_log after the response (ctx.waitUntil), which the promotion job reads ("3rd
 * query: KV cache hit, access_count=3").
 */
import { coldLookup } from "./cold.js";
import { FEATURE_FIELDS, KV_KEYS, KV_TTLS, MEMORY_CACHE_ENTRIES, MEMORY_CACHE_MS } from "./constants.js";
import { background, settle } from "./http.js";
import { kvJson, kvPutJson } from "./kv.js";
import { MemoryCache } from "./memory.js";

const memory = new MemoryCache(MEMORY_CACHE_ENTRIES, MEMORY_CACHE_MS);

const SELECT_D1 = `SELECT ${FEATURE_FIELDS.join(", ")} FROM spotify_audio_features_cache WHERE spotify_id = ?`;
const UPSERT_D1 = `INSERT OR REPLACE INTO spotify_audio_features_cache (spotify_id, ${FEATURE_FIELDS.join(", ")},
  cached_at) VALUES (?, ${FEATURE_FIELDS.map(() => "?").join(", ")}, unixepoch())`;
const RECORD_ACCESS = `INSERT INTO track_access_log (spotify_id, access_count, last_accessed)
  VALUES (?, 1, unixepoch())
  ON CONFLICT(spotify_id) DO UPDATE SET access_count = access_count + 1, last_accessed = unixepoch()`;

/** @returns {Record<string, number | null>} */
function pickFeatures(row) {
  return Object.fromEntries(FEATURE_FIELDS.map((f) => [f, row[f] ?? null]));
}

function isFeatures(value) {
  return value !== null && typeof value === "object" && FEATURE_FIELDS.every((f) => f in value);
}

function kvPutFeatures(env, id, features) {
  return kvPutJson(env, KV_KEYS.audioFeatures(id), { spotify_id: id, features }, KV_TTLS.audioFeatures);
}

export function recordAccess(env, ctx, id) {
  return background(ctx, `track_access_log ${id}`, () => env.SPOTIFY_CACHE.prepare(RECORD_ACCESS).bind(id).run());
}

/**
 * @returns {Promise<{source: "request"|"kv"|"d1"|"r2", features: Record<string, number|null>, shard?: string}
 *   | null>} null when no layer holds the track (R2 holds every track with features).
 */
export async function lookupFeatures(env, ctx, id) {
  const cached = memory.get(id);
  if (cached) {
    recordAccess(env, ctx, id);
    return { source: "request", features: cached };
  }

  const kvValue = await kvJson(env, KV_KEYS.audioFeatures(id));
  if (kvValue && isFeatures(kvValue.features)) {
    const features = pickFeatures(kvValue.features);
    memory.set(id, features);
    recordAccess(env, ctx, id);
    return { source: "kv", features };
  }

  let row = null;
  try {
    row = await env.SPOTIFY_CACHE.prepare(SELECT_D1).bind(id).first();
  } catch (e) {
    console.warn(`D1 spotify_audio_features_cache ${id}: ${e?.message ?? e}`); // fall through to R2
  }
  if (row) {
    const features = pickFeatures(row);
    await settle(`promote ${id} to KV`, [() => kvPutFeatures(env, id, features)]);
    memory.set(id, features);
    recordAccess(env, ctx, id);
    return { source: "d1", features };
  }

  const cold = await coldLookup(env, id);
  if (!cold) return null;
  const features = pickFeatures(cold.row);
  await settle(`write back ${id}`, [
    () => env.SPOTIFY_CACHE.prepare(UPSERT_D1).bind(id, ...FEATURE_FIELDS.map((f) => features[f])).run(),
    () => kvPutFeatures(env, id, features),
  ]);
  memory.set(id, features);
  recordAccess(env, ctx, id);
  return { source: "r2", features, shard: cold.shard };
}
