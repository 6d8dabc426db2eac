/**
 * Vectorize from the Worker: the shard map publish writes (KV spotify:vectorize:shards, or the R2
 * manifest's "vectorize"), one binding per index, a track's vector by id, and a query fanned out over
 * every index and merged by score.
 *
 * Bindings: a Worker binding names one index, so index k of the shard map is bound as SPOTIFY_VECTORS
 * (k = 0, the only one below 10M vectors) and SPOTIFY_VECTORS_{k} for k ≥ 1 (wrangler.toml).
 */
import { getManifest } from "./cold.js";
import { KV_KEYS, VECTORIZE_MAX_TOP_K, VECTORIZE_SHARD_HASH } from "./constants.js";
import { unavailable } from "./http.js";
import { kvJson } from "./kv.js";

/** Checks a shard map {"indexes", "shard_count", "hash"}. */
export function validateShardMap(map, where) {
  const ok = map && Array.isArray(map.indexes) && map.indexes.length > 0
    && map.indexes.every((n) => typeof n === "string")
    && map.shard_count === map.indexes.length && map.hash === VECTORIZE_SHARD_HASH;
  if (!ok) {
    throw unavailable(`${where}: not a shard map {"indexes": [...], "shard_count": len(indexes), `
      + `"hash": "${VECTORIZE_SHARD_HASH}"}`);
  }
  return map;
}

export async function loadShardMap(env) {
  const fromKv = await kvJson(env, KV_KEYS.vectorizeShards);
  if (fromKv) return validateShardMap(fromKv, `KV ${KV_KEYS.vectorizeShards}`);
  const manifest = await getManifest(env);
  if (!manifest.vectorize) throw unavailable(`no Vectorize shard map in KV or the R2 manifest`);
  return validateShardMap(manifest.vectorize, "R2 manifest.json vectorize");
}

export function bindingName(position) {
  return position === 0 ? "SPOTIFY_VECTORS" : `SPOTIFY_VECTORS_${position}`;
}

function binding(env, map, position) {
  const name = bindingName(position);
  const index = env[name];
  if (!index || typeof index.query !== "function") {
    throw unavailable(`Vectorize index ${map.indexes[position]} has no binding ${name}`);
  }
  return index;
}

/** int(sha256(id).hexdigest()[:8], 16) % count — the shard publish put the id in. */
export async function shardOf(id, count) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(id)));
  const prefix = ((digest[0] << 24) | (digest[1] << 16) | (digest[2] << 8) | digest[3]) >>> 0;
  return prefix % count;
}

/** The stored vector of a track, or null when it is not in Vectorize (tier B/C, not promoted yet). */
export async function storedVector(env, map, id) {
  const position = await shardOf(id, map.shard_count);
  const found = await binding(env, map, position).getByIds([id]);
  const hit = Array.isArray(found) ? found.find((v) => v?.id === id) : null;
  return hit && Array.isArray(hit.values) ? Array.from(hit.values, Number) : null;
}

/**
 * Nearest neighbours of `vector` over every index: each is asked for its topK (ids and scores only, so
 * up to VECTORIZE_MAX_TOP_K), the answers merged by score descending (ties by id) and `exclude` dropped.
 * @returns {Promise<{spotify_id: string, score: number, rank: number}[]>}
 */
export async function queryAll(env, map, vector, limit, exclude) {
  const topK = Math.min(limit + 1, VECTORIZE_MAX_TOP_K);
  const answers = await Promise.all(map.indexes.map(async (name, position) => {
    try {
      return await binding(env, map, position).query(vector, { topK, returnValues: false, returnMetadata: "none" });
    } catch (e) {
      if (e?.status) throw e;
      throw unavailable(`Vectorize ${name}: ${e?.message ?? e}`);
    }
  }));
  const matches = answers.flatMap((a) => a?.matches ?? []).filter((m) => m.id !== exclude);
  matches.sort((x, y) => y.score - x.score || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  return matches.slice(0, limit).map((m, i) => ({ spotify_id: m.id, score: m.score, rank: i + 1 }));
}
