/** JSON responses and the errors the router turns into them (never a 500). */

/** Header naming the layer that answered (also in the body of features and similar). */
export const SOURCE_HEADER = "x-aria-source";

export class HttpError extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** 400: the request names no valid id, ISRC or parameter. */
export const badRequest = (message) => new HttpError(400, message);
/** 404: a valid id that no layer knows. */
export const notFound = (message) => new HttpError(404, message);
/** 503: a layer that must answer could not (missing manifest, corrupt shard, unreachable binding). */
export const unavailable = (message) => new HttpError(503, message);

/**
 * @param {unknown} body
 * @param {number} [status]
 * @param {Record<string, string>} [headers]
 */
export function json(body, status = 200, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** Runs work as a promise; a synchronous throw becomes a rejection. */
const attempt = async (work) => work();

/** Runs fire-and-forget work after the response (ctx.waitUntil), logging instead of failing. */
export function background(ctx, label, work) {
  const guarded = attempt(work).catch((e) => console.warn(`${label}: ${e?.message ?? e}`));
  if (ctx && typeof ctx.waitUntil === "function") ctx.waitUntil(guarded);
  return guarded;
}

/** Awaits cache write-backs without letting a failed one fail the request. */
export async function settle(label, works) {
  const results = await Promise.allSettled(works.map(attempt));
  for (const r of results) if (r.status === "rejected") console.warn(`${label}: ${r.reason?.message ?? r.reason}`);
}
