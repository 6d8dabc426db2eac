/**
 * The 13-component audio vector (spec Appendix B; the same table as jobs/vectors/layout.py): each raw
 * value scaled by (x − low) / (high − low) and clamped to [0, 1]; NULL or NaN → 0. Used when a seed
 * track is not in Vectorize, so its query vector must match the published ones.
 */
export const VECTOR_COMPONENTS = Object.freeze([
  ["tempo", 60, 200],
  ["energy", 0, 1],
  ["danceability", 0, 1],
  ["valence", 0, 1],
  ["acousticness", 0, 1],
  ["instrumentalness", 0, 1],
  ["speechiness", 0, 1],
  ["liveness", 0, 1],
  ["loudness", -60, 0],
  ["key", 0, 11],
  ["mode", 0, 1],
  ["time_signature", 3, 7],
  ["popularity", 0, 100],
]);

/**
 * @param {Record<string, number | null>} features raw feature values
 * @returns {number[]} float32-rounded components, as Vectorize stores them
 */
export function normalizeAudioFeatures(features) {
  return VECTOR_COMPONENTS.map(([name, low, high]) => {
    const raw = features[name];
    const scaled = typeof raw === "number" && !Number.isNaN(raw) ? (raw - low) / (high - low) : 0;
    return Math.fround(Math.min(1, Math.max(0, scaled)));
  });
}
