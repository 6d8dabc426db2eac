/**
 * node tools/serve.js PUBLISH_DIR PORT [--state DIR] [--fresh]
 *
 * Serves the Worker on http://127.0.0.1:PORT in Miniflare (workerd) with persisted D1/KV/R2 under the
 * state directory (default $WORKER_STATE_DIR or worker/.state), loaded from the publish directory when
 * its files changed since the last load (D1 import files applied on top — track_access_log survives;
 * KV, R2 and the Vectorize stand-in replaced whole). Prints "ready" once it answers; runs until SIGINT
 * (Ctrl-C) or SIGTERM. scripts/worker-local.sh is the entry point.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Log, LogLevel, Miniflare } from "miniflare";
import { clearBindings, loadPublish, PublishLoadError } from "./load-publish.js";
import { miniflareOptions, publishedShardMap, WORKER_DIR } from "./miniflare-options.js";

function usage(message) {
  if (message) console.error(`worker-local: ${message}`);
  console.error("usage: worker-local.sh PUBLISH_DIR PORT [--state DIR] [--fresh]");
  process.exit(2);
}

function parseArgs(argv) {
  const args = { state: process.env.WORKER_STATE_DIR || path.join(WORKER_DIR, ".state"), fresh: false, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--state") args.state = argv[++i] ?? usage("--state needs a directory");
    else if (argv[i] === "--fresh") args.fresh = true;
    else if (argv[i].startsWith("--")) usage(`unknown option ${argv[i]}`);
    else args.rest.push(argv[i]);
  }
  if (args.rest.length !== 2) usage();
  const [dir, port] = args.rest;
  if (!existsSync(path.join(dir, "d1"))) usage(`${dir}: not a publish directory (no d1/)`);
  if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) usage(`PORT must be 1-65535, not ${port}`);
  return { ...args, dir: path.resolve(dir), port: Number(port), state: path.resolve(args.state) };
}

/** Names, sizes and modification times of every published file: changes when publish rewrites. */
function fingerprint(dir) {
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

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.fresh) rmSync(args.state, { recursive: true, force: true });
  mkdirSync(args.state, { recursive: true });
  const indexes = publishedShardMap(args.dir)?.indexes ?? [];
  const mf = new Miniflare(miniflareOptions({
    indexes, persistRoot: args.state, port: args.port, host: "127.0.0.1", log: new Log(LogLevel.INFO),
  }));
  // Miniflare stops workerd on SIGINT/SIGTERM itself (exit status 130/143); its persisted state is durable.
  const url = await mf.ready;

  const markerFile = path.join(args.state, "aria-publish.json");
  const marker = existsSync(markerFile) ? JSON.parse(readFileSync(markerFile, "utf8")) : null;
  const print = fingerprint(args.dir);
  if (marker?.fingerprint === print && marker.publish_dir === args.dir) {
    console.log(`state ${args.state} already holds ${args.dir} (loaded ${marker.loaded_at})`);
  } else {
    try {
      await clearBindings(mf);
      const summary = await loadPublish(mf, args.dir, { indexes, log: (line) => console.log(line) });
      writeFileSync(markerFile, JSON.stringify({ publish_dir: args.dir, fingerprint: print,
        loaded_at: new Date().toISOString(), summary }, null, 1));
      console.log(`loaded ${args.dir}: ${JSON.stringify(summary)}`);
    } catch (e) {
      console.error(`worker-local: ${e instanceof PublishLoadError ? e.message : e.stack}`);
      if (!(e instanceof PublishLoadError)) console.error("(a state from an older layout? retry with --fresh)");
      await mf.dispose().catch(() => {});
      process.exit(1);
    }
  }
  const d1Dir = path.join(args.state, "d1", "miniflare-D1DatabaseObject");
  const isDatabase = (f) => f.endsWith(".sqlite") && f !== "metadata.sqlite";
  const d1File = existsSync(d1Dir) ? readdirSync(d1Dir).find(isDatabase) : null;
  if (d1File) console.log(`D1 (track_access_log for the promotion job): ${path.join(d1Dir, d1File)}`);
  console.log(`serving ${args.dir} on ${url.origin} (Vectorize: a local stand-in over the published NDJSON)`);
  console.log(`  curl ${url.origin}/tracks/{spotify_id}/features`);
  console.log("ready");
}

main().catch((e) => {
  console.error(`worker-local: ${e.stack ?? e}`);
  process.exit(1);
});
