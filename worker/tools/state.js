/**
 * A persisted Miniflare state (D1/KV/R2 under one directory) loaded from a publish directory, with a
 * marker naming what it holds so a second start skips the load. Used by tools/serve.js and, through
 * tools/prepare-state.js, by run-tests.sh (load once, each test file starts from a copy).
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { clearBindings, loadPublish } from "./load-publish.js";

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
 * Loads the publish directory into a Miniflare persisted at stateDir unless it already holds it.
 * @returns {Promise<{marker: object, loaded: boolean}>}
 */
export async function ensureLoaded(mf, publishDir, stateDir, { indexes, log = () => {} }) {
  const existing = loadedMarker(stateDir, publishDir);
  if (existing) return { marker: existing, loaded: false };
  const started = Date.now();
  await clearBindings(mf);
  const summary = await loadPublish(mf, publishDir, { indexes, log });
  const marker = { publish_dir: publishDir, fingerprint: fingerprint(publishDir), loaded_at: new Date().toISOString(),
    seconds: (Date.now() - started) / 1000, summary };
  writeFileSync(path.join(stateDir, MARKER), JSON.stringify(marker, null, 1));
  return { marker, loaded: true };
}

/** The D1 SQLite file of a persisted state (what the promotion job reads track_access_log from). */
export function d1File(stateDir) {
  const dir = path.join(stateDir, "d1", "miniflare-D1DatabaseObject");
  const name = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite") : null;
  return name ? path.join(dir, name) : null;
}
