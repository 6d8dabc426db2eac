/**
 * A STAND-IN for a Vectorize index binding, for tests and scripts/worker-local.sh only: Vectorize has no
 * local emulation (Miniflare and wrangler dev bind it remotely or not at all). Bound to the Worker as a
 * Miniflare wrapped binding, one per index, with inner bindings INDEX (the index name) and VECTOR_DATA
 * (an R2 bucket holding the published vectorize/<index>/index.json and *.ndjson, copied there by
 * tools/load-publish.js).
 *
 * It answers the Vectorize v2 Worker binding API — query, queryById, getByIds, upsert, insert,
 * deleteByIds, describe — by exact cosine similarity over every stored vector (the real service is
 * approximate), ties by id, and enforces the documented limits (topK ≤ 100, ≤ 20 with values or all
 * metadata; ≤ 1000 vectors per binding upsert; id ≤ 64 bytes; metadata ≤ 10 KiB; the index's
 * dimensions). Writes stay in this isolate's memory. Filters: equality, $eq, $ne, $in, $nin, $lt, $lte,
 * $gt, $gte on top-level metadata fields.
 */

// shared/reference/cloudflare-api.md (Vectorize v2)
const MAX_TOP_K = 100;
const MAX_TOP_K_WITH_VALUES_OR_METADATA = 20;
const MAX_VECTORS_PER_BINDING_UPSERT = 1000;
const MAX_ID_BYTES = 64;
const MAX_METADATA_BYTES = 10 * 1024;
const DEFAULT_TOP_K = 5;

const encoder = new TextEncoder();
/** index name → Promise<{config, vectors: Map<id, {id, values: Float64Array, norm, metadata, namespace}>}> */
const loaded = new Map();
let mutations = 0;

class VectorizeStandInError extends Error {
  constructor(operation, message) {
    super(`VECTOR_${operation}_ERROR (stand-in): ${message}`);
  }
}

function norm(values) {
  let s = 0;
  for (const v of values) s += v * v;
  return Math.sqrt(s);
}

function checkVector(operation, config, v, where) {
  const error = (message) => new VectorizeStandInError(operation, `${where}: ${message}`);
  if (!v || typeof v.id !== "string" || v.id.length === 0) throw error("no id");
  if (encoder.encode(v.id).length > MAX_ID_BYTES) {
    throw error(`id longer than ${MAX_ID_BYTES} bytes`);
  }
  const values = v.values;
  if (!values || typeof values.length !== "number" || values.length !== config.dimensions) {
    throw error(`${values?.length ?? 0} dimensions, index has ${config.dimensions}`);
  }
  const numbers = Float64Array.from(values, Number);
  if (numbers.some((x) => !Number.isFinite(x))) throw error("non-finite value");
  if (v.metadata !== undefined && encoder.encode(JSON.stringify(v.metadata)).length > MAX_METADATA_BYTES) {
    throw error(`metadata larger than ${MAX_METADATA_BYTES} bytes`);
  }
  return { id: v.id, values: numbers, norm: norm(numbers), metadata: v.metadata ?? {}, namespace: v.namespace };
}

async function loadIndex(bucket, name) {
  const prefix = `vectorize/${name}/`;
  const info = await bucket.get(`${prefix}index.json`);
  if (!info) throw new VectorizeStandInError("INDEX", `${prefix}index.json not loaded`);
  const config = await info.json();
  if (config.metric !== "cosine") {
    throw new VectorizeStandInError("INDEX", `${name}: metric ${config.metric}; the stand-in does cosine`);
  }
  if (!Number.isInteger(config.dimensions) || config.dimensions < 1) {
    throw new VectorizeStandInError("INDEX", `${name}: dimensions ${config.dimensions}`);
  }
  const vectors = new Map();
  let cursor;
  const keys = [];
  do {
    const page = await bucket.list({ prefix, cursor });
    keys.push(...page.objects.map((o) => o.key).filter((k) => k.endsWith(".ndjson")));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  keys.sort();
  for (const key of keys) {
    const text = await (await bucket.get(key)).text();
    text.split("\n").forEach((line, i) => {
      if (line.trim() === "") return;
      let record;
      try {
        record = JSON.parse(line);
      } catch {
        throw new VectorizeStandInError("UPSERT", `${key} line ${i + 1}: not JSON`);
      }
      const v = checkVector("UPSERT", config, record, `${key} line ${i + 1}`);
      vectors.set(v.id, v);
    });
  }
  return { config, vectors };
}

function matchesFilter(metadata, filter) {
  for (const [field, condition] of Object.entries(filter ?? {})) {
    const value = metadata?.[field];
    const ops = condition !== null && typeof condition === "object" && !Array.isArray(condition)
      ? condition : { $eq: condition };
    for (const [op, operand] of Object.entries(ops)) {
      const ok = {
        $eq: () => value === operand,
        $ne: () => value !== operand,
        $in: () => Array.isArray(operand) && operand.includes(value),
        $nin: () => Array.isArray(operand) && !operand.includes(value),
        $lt: () => value < operand,
        $lte: () => value <= operand,
        $gt: () => value > operand,
        $gte: () => value >= operand,
      }[op];
      if (!ok) throw new VectorizeStandInError("QUERY", `filter operator ${op} is not supported by the stand-in`);
      if (!ok()) return false;
    }
  }
  return true;
}

function metadataFor(config, v, mode) {
  if (mode === "all") return v.metadata;
  const indexed = Object.keys(config.metadata_indexes ?? {});
  return Object.fromEntries(Object.entries(v.metadata).filter(([k]) => indexed.includes(k)));
}

class VectorizeStandIn {
  constructor(env) {
    if (typeof env.INDEX !== "string" || !env.VECTOR_DATA) {
      throw new Error("Vectorize stand-in needs inner bindings INDEX (name) and VECTOR_DATA (R2 bucket)");
    }
    this.name = env.INDEX;
    this.bucket = env.VECTOR_DATA;
  }

  index() {
    let state = loaded.get(this.name);
    if (!state) {
      state = loadIndex(this.bucket, this.name);
      state.catch(() => loaded.delete(this.name));
      loaded.set(this.name, state);
    }
    return state;
  }

  async describe() {
    const { config, vectors } = await this.index();
    return { dimensions: config.dimensions, vectorCount: vectors.size, processedUpToMutation: String(mutations),
      processedUpToDatetime: new Date().toISOString() };
  }

  async query(vector, options = {}) {
    const { config, vectors } = await this.index();
    const topK = options.topK ?? DEFAULT_TOP_K;
    const returnMetadata = options.returnMetadata === true ? "all"
      : options.returnMetadata === false || options.returnMetadata === undefined ? "none" : options.returnMetadata;
    if (!["none", "indexed", "all"].includes(returnMetadata)) {
      throw new VectorizeStandInError("QUERY", `returnMetadata must be "none", "indexed" or "all"`);
    }
    const heavy = Boolean(options.returnValues) || returnMetadata === "all";
    const cap = heavy ? MAX_TOP_K_WITH_VALUES_OR_METADATA : MAX_TOP_K;
    if (!Number.isInteger(topK) || topK < 1 || topK > cap) {
      throw new VectorizeStandInError("QUERY", `topK must be an integer from 1 to ${cap}`
        + (heavy ? " when values or all metadata are returned" : ""));
    }
    const q = checkVector("QUERY", config, { id: "query", values: vector }, "query vector");
    const scored = [];
    for (const v of vectors.values()) {
      if (options.namespace !== undefined && v.namespace !== options.namespace) continue;
      if (options.filter && !matchesFilter(v.metadata, options.filter)) continue;
      let dot = 0;
      for (let i = 0; i < q.values.length; i++) dot += q.values[i] * v.values[i];
      scored.push({ v, score: q.norm === 0 || v.norm === 0 ? 0 : dot / (q.norm * v.norm) });
    }
    scored.sort((a, b) => b.score - a.score || (a.v.id < b.v.id ? -1 : a.v.id > b.v.id ? 1 : 0));
    const matches = scored.slice(0, topK).map(({ v, score }) => {
      const m = { id: v.id, score };
      if (options.returnValues) m.values = Array.from(v.values);
      if (returnMetadata !== "none") m.metadata = metadataFor(config, v, returnMetadata);
      if (v.namespace !== undefined) m.namespace = v.namespace;
      return m;
    });
    return { matches, count: matches.length };
  }

  async queryById(id, options = {}) {
    const { vectors } = await this.index();
    const v = vectors.get(id);
    if (!v) throw new VectorizeStandInError("QUERY", `no vector with id ${id}`);
    return this.query(v.values, options);
  }

  async getByIds(ids) {
    if (!Array.isArray(ids)) throw new VectorizeStandInError("GET", "ids must be an array");
    const { vectors } = await this.index();
    return ids.filter((id) => vectors.has(id)).map((id) => {
      const v = vectors.get(id);
      const out = { id: v.id, values: Array.from(v.values), metadata: v.metadata };
      if (v.namespace !== undefined) out.namespace = v.namespace;
      return out;
    });
  }

  async #write(operation, list, replace) {
    if (!Array.isArray(list) || list.length > MAX_VECTORS_PER_BINDING_UPSERT) {
      throw new VectorizeStandInError(operation, `at most ${MAX_VECTORS_PER_BINDING_UPSERT} vectors per call`);
    }
    const { config, vectors } = await this.index();
    const checked = list.map((v, i) => checkVector(operation, config, v, `vectors[${i}]`));
    for (const v of checked) if (replace || !vectors.has(v.id)) vectors.set(v.id, v);
    return { mutationId: String(++mutations) };
  }

  upsert(list) {
    return this.#write("UPSERT", list, true);
  }

  insert(list) {
    return this.#write("INSERT", list, false);
  }

  async deleteByIds(ids) {
    const { vectors } = await this.index();
    for (const id of ids) vectors.delete(id);
    return { mutationId: String(++mutations) };
  }
}

export default function (env) {
  return new VectorizeStandIn(env);
}
