/**
 * GET /xref/spotify/{id} and GET /xref/isrc/{isrc}: the Spotify → MusicBrainz cross-reference, KV first
 * (spotify:xref:{id} as published, spotify:isrc:{isrc} written here), then D1 spotify_mbid_xref; a D1
 * hit is cached in KV for 30 days (spec CACHE_TTLS) after the response.
 */
import { KV_KEYS, KV_TTLS } from "./constants.js";
import { background, notFound } from "./http.js";
import { kvJson, kvPutJson } from "./kv.js";

const XREF_FIELDS = ["spotify_id", "isrc", "mbid", "match_confidence", "match_method"];
const SELECT = `SELECT ${XREF_FIELDS.join(", ")} FROM spotify_mbid_xref`;

const pick = (row) => Object.fromEntries(XREF_FIELDS.map((f) => [f, row[f] ?? null]));
const isXref = (v) => v !== null && typeof v === "object" && typeof v.spotify_id === "string"
  && XREF_FIELDS.every((f) => f in v);

/** @returns {Promise<{source: string, body: object}>} */
export async function xrefBySpotify(env, ctx, id) {
  const key = KV_KEYS.crossRef(id);
  const cached = await kvJson(env, key);
  if (isXref(cached) && cached.spotify_id === id) return { source: "kv", body: pick(cached) };
  const row = await env.SPOTIFY_CACHE.prepare(`${SELECT} WHERE spotify_id = ?`).bind(id).first();
  if (!row) throw notFound(`no cross-reference for track ${id}`);
  const body = pick(row);
  background(ctx, `KV ${key}`, () => kvPutJson(env, key, body, KV_TTLS.crossRef));
  return { source: "d1", body };
}

/**
 * @param {string} isrc normalised ISRC
 * @param {string} asWritten the ISRC as requested (publish stores Spotify's spelling)
 */
export async function xrefByIsrc(env, ctx, isrc, asWritten) {
  const key = KV_KEYS.isrcLookup(isrc);
  const cached = await kvJson(env, key);
  if (cached && cached.isrc === isrc && Array.isArray(cached.matches) && cached.matches.every(isXref)) {
    return { source: "kv", body: { isrc, matches: cached.matches.map(pick) } };
  }
  const { results } = await env.SPOTIFY_CACHE.prepare(
    `${SELECT} WHERE isrc IN (?1, ?2) ORDER BY match_confidence DESC, spotify_id`,
  ).bind(isrc, asWritten).all();
  if (results.length === 0) throw notFound(`no Spotify track with ISRC ${isrc}`);
  const body = { isrc, matches: results.map(pick) };
  background(ctx, `KV ${key}`, () => kvPutJson(env, key, body, KV_TTLS.isrcLookup));
  return { source: "d1", body };
}
