/** KV reads that treat a broken cache entry as a miss, and writes with the spec's TTLs. */

/** A KV JSON value, or null when missing or unreadable. */
export async function kvJson(env, key) {
  try {
    return await env.SPOTIFY_KV.get(key, "json");
  } catch (e) {
    console.warn(`KV ${key}: ${e?.message ?? e}`);
    return null;
  }
}

/** @param {number} ttl seconds */
export function kvPutJson(env, key, value, ttl) {
  return env.SPOTIFY_KV.put(key, JSON.stringify(value), { expirationTtl: ttl });
}
