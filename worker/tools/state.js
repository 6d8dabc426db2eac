/**
 * A persisted Miniflare state (D1/KV/R2 under one directory) loaded from a publish directory, with a
 * marker naming what it holds (path and a fingerprint of its files) so a second start skips the load. Used by tools/serve.js and, through
 * tools/prepare-state.js, by run-tests.sh (load once, each test file starts from a copy).
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { loadPublish } from "./load-publish.js";

export const MARKER = "aria-publish.json";

/** Names, sizes and modification times of every published file: changes when publish rewrites. */
export function fingerprint(dir) {
  const hash = createHash("sha256");
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) walk(full);
      else {
        const s = statSync(full);
        hash.update(`${path.relative(dir, full)}\0${s.size}\0${s.mtimeMs}\n`);
      }
    }
  };
  walk(dir);
  return hash.digest("hex");
}

/** The marker of a state directory when it holds exactly this publish directory, else null. */
export function loadedMarker(stateDir, publishDir) {
  const file = path.join(stateDir, MARKER);
  if (!existsSync(file)) return null;
  const marker = JSON.parse(readFileSync(file, "utf8"));
  return marker.publish_dir === publishDir && marker.fingerprint === fingerprint(publishDir) ? marker : null;
}

/**
 * Before Miniflare starts on stateDir: the marker when it already holds this publish directory, else
 * null after removing the persisted KV and R2 (a load replaces them whole; deleting 40,000 keys one by
 * one takes minutes) — D1 is kept: the import files apply on top, so track_access_log survives.
 */
export function reuseOrReset(stateDir, publishDir) {
  const marker = loadedMarker(stateDir, publishDir);
  if (marker) return marker;
  for (const sub of ["kv", "r2", MARKER]) rmSync(path.join(stateDir, sub), { recursive: true, force: true });
  return null;
}

/** Loads the publish directory into the started Miniflare and writes the marker. */
export async function loadInto(mf, publishDir, stateDir, { indexes, log = () => {} }) {
  const started = Date.now();
  const summary = await loadPublish(mf, publishDir, { indexes, log });
  const marker = { publish_dir: publishDir, fingerprint: fingerprint(publishDir), loaded_at: new Date().toISOString(),
    seconds: (Date.now() - started) / 1000, summary };
  writeFileSync(path.join(stateDir, MARKER), JSON.stringify(marker, null, 1));
  return marker;
}

/** The D1 SQLite file of a persisted state (what the promotion job reads track_access_log from). */
export function d1File(stateDir) {
  const dir = path.join(stateDir, "d1", "miniflare-D1DatabaseObject");
  const name = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite") : null;
  return name ? path.join(dir, name) : null;
}
