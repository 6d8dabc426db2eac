/**
 * Loads a local publish directory (docs/publish-layout.md) into a Miniflare instance's bindings:
 * D1 from the d1/*.sql import files (in file-name order, split into statements as Cloudflare's import
 * applies them: each ≤ 100,000 bytes, no transaction statements; sent in batches through the loader
 * Worker, so D1 in workerd checks each), KV from the kv/*.json bulk payloads (through the loader Worker),
 * R2 from r2/ (manifest.json last; backup/ skipped), the Vectorize stand-in from vectorize/<index>/.
 * Loading into Miniflare's D1 is the check that the import files suit Cloudflare's SQLite.
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { BINDINGS, LOADER_WORKER, STANDIN_BUCKET_BINDING, STANDIN_WORKER } from "./miniflare-options.js";
import { splitStatements, TRANSACTION_STATEMENT } from "./sql-split.js";

// shared/reference/cloudflare-api.md
export const D1_MAX_STATEMENT_BYTES = 100_000;
export const KV_MAX_KEY_BYTES = 512;
export const KV_MIN_EXPIRATION_TTL = 60;
export const KV_MAX_PAIRS_PER_BULK = 10_000;
/** Statements sent to D1 per batch (a batch is one transaction in Miniflare, like one import). */
const D1_BATCH_STATEMENTS = 50;
const D1_BATCH_BYTES = 4_000_000;
/** KV items per request to the loader Worker (a bulk payload holds up to 10,000). */
const KV_ITEMS_PER_POST = 1000;
/**
 * Miniflare's Node-to-workerd proxy now and then refuses a request while decoding it ("false == true",
 * an assertion in its structured-clone reviver; seen on a loaded machine), before the binding runs:
 * such a call is retried. Errors from D1, KV or R2 themselves are not.
 */
const PROXY_RETRIES = 3;
const isProxyGlitch = (e) => e?.name === "AssertionError" || /^false == true$/.test(e?.message ?? "");

async function viaProxy(fn) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!isProxyGlitch(e) || attempt >= PROXY_RETRIES) throw e;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

export class PublishLoadError extends Error {}

const fail = (message) => {
  throw new PublishLoadError(message);
};

function listFiles(dir, suffix) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith(suffix)).sort().map((f) => path.join(dir, f));
}

function walk(dir, base = dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? walk(full, base) : [path.relative(base, full).split(path.sep).join("/")];
  }).sort();
}

/** A file's bytes as a plain ArrayBuffer (Miniflare's proxy refuses Buffer views of Node's pool). */
function fileBytes(file) {
  const b = readFileSync(file);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
}

const stripComments = (sql) => sql.replace(/^(\s|--[^\n]*\n|\/\*[\s\S]*?\*\/)*/, "");

/**
 * The statements of one import file, checked against D1's import rules.
 * @returns {{sql: string, line: number}[]}
 */
export function importStatements(file) {
  const name = path.join(path.basename(path.dirname(file)), path.basename(file));
  let statements;
  try {
    statements = splitStatements(readFileSync(file, "utf8"));
  } catch (e) {
    fail(`${name}: ${e.message}`);
  }
  for (const [i, s] of statements.entries()) {
    const where = `${name} statement ${i + 1} (line ${s.line})`;
    if (TRANSACTION_STATEMENT.test(stripComments(s.sql))) {
      fail(`${where}: transaction statements are not allowed in a D1 import (${s.sql.slice(0, 40)})`);
    }
    const bytes = Buffer.byteLength(s.sql, "utf8") + 1;
    if (bytes > D1_MAX_STATEMENT_BYTES) {
      fail(`${where}: ${bytes} bytes, D1 allows ${D1_MAX_STATEMENT_BYTES} per statement`);
    }
  }
  return statements;
}

/** POSTs one batch to the loader Worker; a binding's refusal becomes an Error with its message. */
async function post(loader, pathname, body) {
  const res = await viaProxy(() => loader.fetch(`http://loader${pathname}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  }));
  const answer = await res.json();
  if (!res.ok) throw new Error(answer.error);
  return answer;
}

async function loadD1(loader, files, log) {
  let count = 0;
  for (const file of files) {
    const name = path.join("d1", path.basename(file));
    const statements = importStatements(file);
    for (let start = 0; start < statements.length;) {
      let end = start;
      let bytes = 0;
      while (end < statements.length && end - start < D1_BATCH_STATEMENTS && bytes < D1_BATCH_BYTES) {
        bytes += statements[end++].sql.length;
      }
      const batch = statements.slice(start, end);
      try {
        await post(loader, "/d1", { statements: batch.map((s) => s.sql) });
      } catch (batchError) {
        // The batch rolled back: apply it one statement at a time to name the one D1 refuses.
        for (const [i, s] of batch.entries()) {
          try {
            await post(loader, "/d1", { statements: [s.sql] });
          } catch (e) {
            fail(`${name} statement ${start + i + 1} (line ${s.line}): D1 refused it: ${e.message}`);
          }
        }
        fail(`${name} statements ${start + 1}-${end}: D1 refused the batch: ${batchError.message}`);
      }
      start = end;
    }
    count += statements.length;
    log(`d1: ${name} (${statements.length} statements)`);
  }
  return count;
}

/** KV bulk payload items, checked against the KV bulk API's rules. */
export function kvItems(file) {
  const name = path.join("kv", path.basename(file));
  let items;
  try {
    items = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    fail(`${name}: not JSON (${e.message})`);
  }
  if (!Array.isArray(items)) fail(`${name}: not a JSON array of {key, value, expiration_ttl}`);
  if (items.length > KV_MAX_PAIRS_PER_BULK) {
    fail(`${name}: ${items.length} pairs, a bulk write takes ${KV_MAX_PAIRS_PER_BULK}`);
  }
  items.forEach((item, i) => {
    const where = `${name}[${i}]`;
    if (typeof item?.key !== "string" || item.key === "" || Buffer.byteLength(item.key) > KV_MAX_KEY_BYTES) {
      fail(`${where}: key must be a non-empty string of at most ${KV_MAX_KEY_BYTES} bytes`);
    }
    if (typeof item.value !== "string") fail(`${where} (${item.key}): value must be a string`);
    const ttl = item.expiration_ttl;
    if (ttl !== undefined && ttl !== null && (!Number.isInteger(ttl) || ttl < KV_MIN_EXPIRATION_TTL)) {
      fail(`${where} (${item.key}): expiration_ttl must be an integer ≥ ${KV_MIN_EXPIRATION_TTL}`);
    }
  });
  return items;
}

async function loadKv(loader, files, log) {
  let count = 0;
  for (const file of files) {
    const items = kvItems(file);
    for (let start = 0; start < items.length; start += KV_ITEMS_PER_POST) {
      const chunk = items.slice(start, start + KV_ITEMS_PER_POST);
      try {
        await post(loader, "/kv", { items: chunk });
      } catch (e) {
        fail(`${path.join("kv", path.basename(file))} items ${start}-${start + chunk.length - 1}: KV refused: ${e.message}`);
      }
    }
    count += items.length;
    log(`kv: ${path.basename(file)} (${items.length} keys)`);
  }
  return count;
}

async function loadR2(bucket, r2Dir, log) {
  const keys = walk(r2Dir).filter((k) => !k.startsWith("backup/"));
  const manifestKey = "manifest.json";
  if (keys.includes(manifestKey)) {
    let manifest;
    try {
      manifest = JSON.parse(readFileSync(path.join(r2Dir, manifestKey), "utf8"));
    } catch (e) {
      fail(`r2/${manifestKey}: not JSON (${e.message})`);
    }
    for (const shard of manifest.shards ?? []) {
      if (!keys.includes(shard.key)) fail(`r2/${manifestKey} lists ${shard.key}, which is not in r2/`);
    }
  }
  const ordered = [...keys.filter((k) => k !== manifestKey), ...keys.filter((k) => k === manifestKey)];
  for (const key of ordered) {
    const bytes = fileBytes(path.join(r2Dir, ...key.split("/")));
    await viaProxy(() => bucket.put(key, bytes));
  }
  log(`r2: ${ordered.length} objects`);
  return ordered.length;
}

async function loadVectors(bucket, vectorDir, indexes, log) {
  let count = 0;
  for (const name of indexes) {
    const dir = path.join(vectorDir, name);
    if (!existsSync(path.join(dir, "index.json"))) {
      fail(`vectorize/${name}/index.json missing (the shard map names the index)`);
    }
    const files = ["index.json", ...readdirSync(dir).filter((f) => f.endsWith(".ndjson")).sort()];
    for (const f of files) {
      const bytes = fileBytes(path.join(dir, f));
      await viaProxy(() => bucket.put(`vectorize/${name}/${f}`, bytes));
    }
    count += files.length - 1;
    log(`vectorize: ${name} (${files.length - 1} NDJSON files, stand-in)`);
  }
  return count;
}

/** Applies the d1/*.sql import files only (what a republish does to D1). */
export async function loadD1Directory(mf, publishDir, log = () => {}) {
  const d1Files = listFiles(path.join(publishDir, "d1"), ".sql");
  if (d1Files.length === 0) fail(`${publishDir}/d1: no *.sql import files`);
  return loadD1(await mf.getWorker(LOADER_WORKER), d1Files, log);
}

/**
 * @param {import("miniflare").Miniflare} mf
 * @param {string} publishDir
 * @param {{indexes?: string[], log?: (line: string) => void}} options indexes: the shard map's names
 */
export async function loadPublish(mf, publishDir, { indexes = [], log = () => {} } = {}) {
  if (!existsSync(publishDir) || !statSync(publishDir).isDirectory()) fail(`${publishDir}: not a directory`);
  const d1Files = listFiles(path.join(publishDir, "d1"), ".sql");
  if (d1Files.length === 0) fail(`${publishDir}/d1: no *.sql import files`);
  const summary = {};
  const loader = await mf.getWorker(LOADER_WORKER);
  summary.d1_statements = await loadD1(loader, d1Files, log);
  summary.d1_files = d1Files.length;
  const kvFiles = listFiles(path.join(publishDir, "kv"), ".json");
  summary.kv_keys = await loadKv(loader, kvFiles, log);
  summary.r2_objects = await loadR2(await mf.getR2Bucket(BINDINGS.r2), path.join(publishDir, "r2"), log);
  summary.vector_files = await loadVectors(await mf.getR2Bucket(STANDIN_BUCKET_BINDING, STANDIN_WORKER),
    path.join(publishDir, "vectorize"), indexes, log);
  return summary;
}
