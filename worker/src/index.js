/**
 * aria-signals Worker: serves what the publish job wrote to D1, KV, R2 and Vectorize
 * (docs/publish-layout.md). JSON in and out; 400 for a malformed id or parameter, 404 for what no
 * layer knows, 503 when a layer that must answer cannot — never a 500.
 *
 *   GET /tracks/{spotify_id}/features
 *   GET /tracks/{spotify_id}/similar?limit=N&by=audio|playlists
 *   GET /xref/spotify/{spotify_id}
 *   GET /xref/isrc/{isrc}
 */
import { lookupFeatures } from "./features.js";
import { badRequest, HttpError, json, notFound, SOURCE_HEADER } from "./http.js";
import { byParam, limitParam, normalizeIsrc, spotifyId } from "./params.js";
import { similar } from "./similar.js";
import { xrefByIsrc, xrefBySpotify } from "./xref.js";

async function route(request, env, ctx) {
  if (request.method !== "GET") throw new HttpError(405, `method ${request.method} not allowed; use GET`);
  const url = new URL(request.url);
  let parts;
  try {
    parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    throw badRequest("malformed percent-encoding in the path");
  }

  if (parts.length === 3 && parts[0] === "tracks" && parts[2] === "features") {
    const id = spotifyId(parts[1]);
    const found = await lookupFeatures(env, ctx, id);
    if (!found) throw notFound(`unknown track ${id}`);
    const headers = { [SOURCE_HEADER]: found.source };
    if (found.shard) headers["x-aria-shard"] = found.shard;
    return json({ spotify_id: id, source: found.source, features: found.features }, 200, headers);
  }
  if (parts.length === 3 && parts[0] === "tracks" && parts[2] === "similar") {
    const id = spotifyId(parts[1]);
    const answer = await similar(env, ctx, id, byParam(url.searchParams), limitParam(url.searchParams));
    return json(answer, 200, { [SOURCE_HEADER]: answer.source });
  }
  if (parts.length === 3 && parts[0] === "xref" && parts[1] === "spotify") {
    const { source, body } = await xrefBySpotify(env, ctx, spotifyId(parts[2]));
    return json(body, 200, { [SOURCE_HEADER]: source });
  }
  if (parts.length === 3 && parts[0] === "xref" && parts[1] === "isrc") {
    const { source, body } = await xrefByIsrc(env, ctx, normalizeIsrc(parts[2]), parts[2]);
    return json(body, 200, { [SOURCE_HEADER]: source });
  }
  throw notFound(`no endpoint ${url.pathname}`);
}

export default {
  async fetch(request, env, ctx) {
    try {
      return await route(request, env, ctx);
    } catch (e) {
      if (e instanceof HttpError) return json({ error: e.message }, e.status);
      console.error(`unexpected: ${e?.stack ?? e}`);
      return json({ error: `service unavailable: ${e?.message ?? e}` }, 503);
    }
  },
};
