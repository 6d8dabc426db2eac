/** Request parameters: checked here, so a bad one is a 400 naming it. */
import { ISRC, SIMILAR_DEFAULT_LIMIT, SIMILAR_MAX_LIMIT, SPOTIFY_ID } from "./constants.js";
import { badRequest } from "./http.js";

export function spotifyId(raw) {
  if (!SPOTIFY_ID.test(raw)) throw badRequest(`not a Spotify track id (22 base62 characters): ${raw.slice(0, 64)}`);
  return raw;
}

export function limitParam(params) {
  const raw = params.get("limit");
  if (raw === null) return SIMILAR_DEFAULT_LIMIT;
  if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > SIMILAR_MAX_LIMIT) {
    throw badRequest(`limit must be an integer from 1 to ${SIMILAR_MAX_LIMIT}`);
  }
  return Number(raw);
}

export function byParam(params) {
  const by = params.get("by") ?? "audio";
  if (by !== "audio" && by !== "playlists") throw badRequest(`by must be "audio" or "playlists"`);
  return by;
}

/**
 * As jobs/xref/text.py isrc_normalized (publish stores that form): ASCII letters upper-cased (toUpperCase
 * would turn ß or ı into ASCII letters), white space, dots, hyphens and U+2010–U+2015 dashes dropped.
 */
export function normalizeIsrc(raw) {
  const isrc = raw.replace(/[a-z]+/g, (s) => s.toUpperCase()).replace(/[\p{White_Space}\u2010-\u2015.-]+/gu, "");
  if (!ISRC.test(isrc)) throw badRequest(`not an ISRC (CC-XXX-YY-NNNNN): ${raw.slice(0, 64)}`);
  return isrc;
}
