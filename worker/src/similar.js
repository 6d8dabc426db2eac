/**
 * GET /tracks/{id}/similar?limit=N&by=audio|playlists.
 *
 * by=audio, cheapest first: KV spotify:topsim:{id} and D1 precomputed_similar (the published exact top
 * 100 of the popular seeds; a D1 hit re-warms KV), then KV spotify:sim:{id}:{limit} (an earlier
 * Vectorize answer, 1 h), then Vectorize: the seed's stored vector (or, for a track not in Vectorize,
 * its features from the cache-through lookup, normalised as publish does) queried on every index.
 * by=playlists: the co-occurrence pairs of the track in D1, by the combined score.
 */
import { coldLookup } from "./cold.js";
import { KV_KEYS, KV_TTLS } from "./constants.js";
import { lookupFeatures } from "./features.js";
import { background, notFound } from "./http.js";
import { kvJson, kvPutJson } from "./kv.js";
import { normalizeAudioFeatures } from "./vector.js";
import { loadShardMap, queryAll, storedVector } from "./vectorize.js";

const SELECT_PRECOMPUTED = `SELECT similar_spotify_id AS spotify_id, similarity_score AS score, rank
  FROM precomputed_similar WHERE seed_spotify_id = ? ORDER BY rank`;
// Both sides of the pair (track_a < track_b), each through its own index; ties as gold/cooccurrence_top.
const SELECT_COOCCURRENCE = `SELECT spotify_id, score FROM (
    SELECT track_b AS spotify_id, score, cooccurrence_count FROM playlist_cooccurrence WHERE track_a = ?1
    UNION ALL
    SELECT track_a AS spotify_id, score, cooccurrence_count FROM playlist_cooccurrence WHERE track_b = ?1)
  ORDER BY score DESC, cooccurrence_count DESC, spotify_id ASC LIMIT ?2`;

function isResultList(value) {
  return Array.isArray(value) && value.every((r) => r && typeof r.spotify_id === "string"
    && typeof r.score === "number" && Number.isInteger(r.rank));
}

/** Takes the first `limit` of a ranked list. */
function ranked(list, limit) {
  return list.slice(0, limit).map((r) => ({ spotify_id: r.spotify_id, score: r.score, rank: r.rank }));
}

/** Whether any table knows the track (a known track with no neighbours answers an empty list). */
async function trackKnown(env, id) {
  const row = await env.SPOTIFY_CACHE.prepare(`SELECT 1 AS known FROM spotify_mbid_xref WHERE spotify_id = ?1
    UNION ALL SELECT 1 FROM spotify_audio_features_cache WHERE spotify_id = ?1 LIMIT 1`).bind(id).first();
  return Boolean(row) || Boolean(await coldLookup(env, id));
}

async function byAudio(env, ctx, id, limit) {
  const topsim = await kvJson(env, KV_KEYS.topSimilar(id));
  if (isResultList(topsim) && topsim.length > 0) return { source: "kv", results: ranked(topsim, limit) };

  const { results: rows } = await env.SPOTIFY_CACHE.prepare(SELECT_PRECOMPUTED).bind(id).all();
  if (rows.length > 0) {
    background(ctx, `KV topsim ${id}`, () => kvPutJson(env, KV_KEYS.topSimilar(id), rows, KV_TTLS.topSimilar));
    return { source: "d1", results: ranked(rows, limit) };
  }

  const simKey = KV_KEYS.similarityResults(id, limit);
  const earlier = await kvJson(env, simKey);
  if (isResultList(earlier)) return { source: "kv", results: earlier };

  const map = await loadShardMap(env);
  let vector = await storedVector(env, map, id);
  if (!vector) {
    const found = await lookupFeatures(env, ctx, id);
    if (!found) throw notFound(`unknown track ${id}`);
    vector = normalizeAudioFeatures(found.features);
  }
  const results = await queryAll(env, map, vector, limit, id);
  background(ctx, `KV ${simKey}`, () => kvPutJson(env, simKey, results, KV_TTLS.similarityResults));
  return { source: "vectorize", results };
}

async function byPlaylists(env, id, limit) {
  const { results: rows } = await env.SPOTIFY_CACHE.prepare(SELECT_COOCCURRENCE).bind(id, limit).all();
  if (rows.length === 0 && !(await trackKnown(env, id))) throw notFound(`unknown track ${id}`);
  return { source: "d1", results: rows.map((r, i) => ({ spotify_id: r.spotify_id, score: r.score, rank: i + 1 })) };
}

/** @param {"audio"|"playlists"} by */
export async function similar(env, ctx, id, by, limit) {
  const answer = by === "audio" ? await byAudio(env, ctx, id, limit) : await byPlaylists(env, id, limit);
  return { spotify_id: id, by, source: answer.source, results: answer.results };
}
