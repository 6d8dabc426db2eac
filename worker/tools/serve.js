/**
 * node tools/serve.js PUBLISH_DIR PORT [--state DIR] [--fresh]
 *
 * Serves the Worker on http://127.0.0.1:PORT in Miniflare (workerd) with persisted D1/KV/R2 under the
 * state directory (default $WORKER_STATE_DIR or worker/.state), loaded from the publish directory when
 * its files changed since the last load (D1 import files applied on top — track_access_log survives;
 * KV, R2 and the Vectorize stand-in replaced whole). Prints "ready" once it answers; runs until SIGINT
 * (Ctrl-C) or SIGTERM. scripts/worker-local.sh is the entry point.
 */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { Log, LogLevel, Miniflare } from "miniflare";
import { PublishLoadError } from "./load-publish.js";
import { miniflareOptions, publishedShardMap, WORKER_DIR } from "./miniflare-options.js";
import { d1File, loadInto, reuseOrReset } from "./state.js";

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

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.fresh) rmSync(args.state, { recursive: true, force: true });
  mkdirSync(args.state, { recursive: true });
  const indexes = publishedShardMap(args.dir)?.indexes ?? [];
  const reused = reuseOrReset(args.state, args.dir);
  const mf = new Miniflare(miniflareOptions({
    indexes, persistRoot: args.state, port: args.port, host: "127.0.0.1", log: new Log(LogLevel.INFO),
  }));
  // Miniflare stops workerd on SIGINT/SIGTERM itself (exit status 130/143); its persisted state is durable.
  const url = await mf.ready;

  try {
    if (reused) {
      console.log(`state ${args.state} already holds ${args.dir} (loaded ${reused.loaded_at})`);
    } else {
      const marker = await loadInto(mf, args.dir, args.state, { indexes, log: (l) => console.log(l) });
      console.log(`loaded ${args.dir} in ${marker.seconds} s: ${JSON.stringify(marker.summary)}`);
    }
  } catch (e) {
    console.error(`worker-local: ${e instanceof PublishLoadError ? e.message : e.stack}`);
    if (!(e instanceof PublishLoadError)) console.error("(a state from an older layout? retry with --fresh)");
    await mf.dispose().catch(() => {});
    process.exit(1);
  }
  const database = d1File(args.state);
  if (database) console.log(`D1 (track_access_log for the promotion job): ${database}`);
  const exporter = path.relative(process.cwd(), path.join(WORKER_DIR, "tools", "export_access_log.py"));
  console.log(`  to promote: python3 ${exporter} --state ${args.state} ${args.dir}  (then ./spark-submit.sh promote)`);
  console.log(`serving ${args.dir} on ${url.origin} (Vectorize: a local stand-in over the published NDJSON)`);
  console.log(`  curl ${url.origin}/tracks/{spotify_id}/features`);
  console.log("ready");
}

main().catch((e) => {
  console.error(`worker-local: ${e.stack ?? e}`);
  process.exit(1);
});
