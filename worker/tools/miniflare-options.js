/**
 * Miniflare options for the Worker (tests and scripts/worker-local.sh): the same source modules
 * wrangler bundles, sql.js as CommonJS plus its .wasm as a CompiledWasm module, the D1/KV/R2 bindings
 * of wrangler.toml, one Vectorize stand-in (standin/vectorize.js) per index of the shard map, and a
 * loader Worker (tools/loader-worker.js) that bulk-loads D1 and KV.
 */
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const WORKER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);

export const BINDINGS = Object.freeze({
  d1: "SPOTIFY_CACHE",
  kv: "SPOTIFY_KV",
  r2: "SPOTIFY_STORAGE",
  vectorize: "SPOTIFY_VECTORS",
});
export const STANDIN_WORKER = "vectorize-standin";
export const LOADER_WORKER = "publish-loader";
const STORAGE = Object.freeze({ d1: "spotify-cache", kv: "spotify-kv", r2: "spotify-storage", vectors: "vectorize-standin" });
export const STANDIN_BUCKET_BINDING = "VECTOR_DATA";

/** compatibility_date from wrangler.toml, so both runs use one. */
export function compatibilityDate() {
  const toml = readFileSync(path.join(WORKER_DIR, "wrangler.toml"), "utf8");
  const match = toml.match(/^compatibility_date\s*=\s*"([0-9-]+)"/m);
  if (!match) throw new Error("wrangler.toml: no compatibility_date");
  return match[1];
}

/** Binding name of index k of the shard map (as src/vectorize.js). */
export function vectorBindingName(position) {
  return position === 0 ? BINDINGS.vectorize : `${BINDINGS.vectorize}_${position}`;
}

function workerModules() {
  const src = path.join(WORKER_DIR, "src");
  const modules = readdirSync(src).filter((f) => f.endsWith(".js")).sort()
    .map((f) => ({ type: "ESModule", path: path.join(src, f) }));
  // The entry module first.
  modules.sort((a, b) => (a.path.endsWith("index.js") ? -1 : b.path.endsWith("index.js") ? 1 : 0));
  // workerd resolves a bare specifier such as "sql.js/dist/sql-wasm.js" next to the importing module
  // (src/sqlite.js), not through node_modules as wrangler's bundler does: name the modules so.
  for (const [type, spec] of [["CommonJS", "sql.js/dist/sql-wasm.js"], ["CompiledWasm", "sql.js/dist/sql-wasm.wasm"]]) {
    modules.push({ type, path: path.join(src, spec), contents: readFileSync(require.resolve(spec)) });
  }
  return modules;
}

/**
 * @param {{indexes?: string[], persistRoot?: string, port?: number, host?: string, log?: any}} options
 *   indexes: the shard map's index names (one stand-in binding each)
 */
export function miniflareOptions({ indexes = [], persistRoot, port, host = "127.0.0.1", log } = {}) {
  const wrappedBindings = Object.fromEntries(indexes.map((name, k) => [vectorBindingName(k), {
    scriptName: STANDIN_WORKER,
    bindings: { INDEX: name },
  }]));
  return {
    cf: false,
    host,
    port,
    log,
    defaultPersistRoot: persistRoot,
    workers: [
      {
        name: "aria-signals",
        compatibilityDate: compatibilityDate(),
        modulesRoot: WORKER_DIR,
        modules: workerModules(),
        d1Databases: { [BINDINGS.d1]: STORAGE.d1 },
        kvNamespaces: { [BINDINGS.kv]: STORAGE.kv },
        r2Buckets: { [BINDINGS.r2]: STORAGE.r2 },
        wrappedBindings,
      },
      {
        name: STANDIN_WORKER,
        modules: [{ type: "ESModule", path: path.join(WORKER_DIR, "standin", "vectorize.js") }],
        r2Buckets: { [STANDIN_BUCKET_BINDING]: STORAGE.vectors },
      },
      {
        // Same D1 database and KV namespace as the Worker (storage is shared by id): bulk loads.
        name: LOADER_WORKER,
        compatibilityDate: compatibilityDate(),
        modules: [{ type: "ESModule", path: path.join(WORKER_DIR, "tools", "loader-worker.js") }],
        d1Databases: { DB: STORAGE.d1 },
        kvNamespaces: { KV: STORAGE.kv },
      },
    ],
  };
}

/** The shard map of a publish directory: the KV payload item, else the R2 manifest's, else null. */
export function publishedShardMap(publishDir) {
  const kvDir = path.join(publishDir, "kv");
  if (existsSync(kvDir)) {
    for (const f of readdirSync(kvDir).filter((f) => f.endsWith(".json")).sort()) {
      const items = JSON.parse(readFileSync(path.join(kvDir, f), "utf8"));
      const item = Array.isArray(items) ? items.find((i) => i?.key === "spotify:vectorize:shards") : null;
      if (item) return JSON.parse(item.value);
    }
  }
  const manifest = path.join(publishDir, "r2", "manifest.json");
  if (existsSync(manifest)) return JSON.parse(readFileSync(manifest, "utf8")).vectorize ?? null;
  return null;
}
