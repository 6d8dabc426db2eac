/**
 * Every key pattern, TTL and limit the Worker obeys, in one place, with its source.
 *
 * Sources: the spec's "Cache Key Patterns" (keys, TTLs), docs/publish-layout.md (what publish writes),
 * shared/reference/cloudflare-api.md (Vectorize limits).
 */

/** Raw audio-feature fields of a features answer, as in bronze and in the publish layout's KV value. */
export const FEATURE_FIELDS = Object.freeze([
  "tempo", "energy", "danceability", "valence", "acousticness", "instrumentalness", "speechiness",
  "liveness", "loudness", "key", "mode", "time_signature", "duration_ms", "popularity",
]);

/** KV keys (spec "Cache Key Patterns"; the shard map key from docs/publish-layout.md). */
export const KV_KEYS = Object.freeze({
  audioFeatures: (id) => `spotify:af:${id}`,
  crossRef: (id) => `spotify:xref:${id}`,
  isrcLookup: (isrc) => `spotify:isrc:${isrc}`,
  similarityResults: (id, limit) => `spotify:sim:${id}:${limit}`,
  topSimilar: (id) => `spotify:topsim:${id}`,
  vectorizeShards: "spotify:vectorize:shards",
});

/** KV TTLs in seconds for what the Worker writes back (spec CACHE_TTLS). */
export const KV_TTLS = Object.freeze({
  audioFeatures: 7 * 24 * 60 * 60,
  crossRef: 30 * 24 * 60 * 60,
  isrcLookup: 30 * 24 * 60 * 60,
  similarityResults: 1 * 60 * 60,
  topSimilar: 7 * 24 * 60 * 60,
});

/** Vectorize query limits (cloudflare-api.md: topK ≤ 100, or ≤ 20 when values or all metadata return). */
export const VECTORIZE_MAX_TOP_K = 100;
export const VECTORIZE_MAX_TOP_K_WITH_VALUES_OR_METADATA = 20;
/** The only shard-map hash publish writes: shard = int(sha256(id).hexdigest()[:8], 16) % shard_count. */
export const VECTORIZE_SHARD_HASH = "sha256-prefix8-mod";

/** /similar: default from the spec's findSimilarByAudioFeatures (limit = 50); max = precomputed top-K. */
export const SIMILAR_DEFAULT_LIMIT = 50;
export const SIMILAR_MAX_LIMIT = 100;

/**
 * Layer 0 (the spec's "request-level, in-memory" cache): a bounded Map per isolate. Entries expire so
 * that a republish is seen within a minute; the bound keeps a hot isolate's memory flat.
 */
export const MEMORY_CACHE_ENTRIES = 1000;
export const MEMORY_CACHE_MS = 60_000;

/** R2 cold tier (docs/publish-layout.md): the manifest, written last, at a fixed key. */
export const R2_MANIFEST_KEY = "manifest.json";
export const MANIFEST_CACHE_MS = 60_000;
/**
 * Shards kept open per isolate (sql.js copies a shard into its heap). A Worker has 128 MB; publish caps a
 * shard at 32 MB (publish.r2_shard_bytes), so 48 MB keeps one full shard, or several small ones.
 */
export const SHARD_CACHE_BYTES = 48 * 1024 * 1024;

/** 22-character base62 Spotify ids (what ingest accepts). */
export const SPOTIFY_ID = /^[0-9A-Za-z]{22}$/;
/** ISO 3901 ISRC after normalising (params.js normalizeIsrc, as jobs/xref/text.py isrc_normalized). */
export const ISRC = /^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$/;
