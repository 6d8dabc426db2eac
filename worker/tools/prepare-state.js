/**
 * node tools/prepare-state.js PUBLISH_DIR STATE_DIR — loads a publish directory into a persisted
 * Miniflare state once (run-tests.sh), so each test file starts from a copy instead of loading again.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { Miniflare } from "miniflare";
import { PublishLoadError } from "./load-publish.js";
import { miniflareOptions, publishedShardMap } from "./miniflare-options.js";
import { loadInto, reuseOrReset } from "./state.js";

const [publishDir, stateDir] = process.argv.slice(2).map((p) => path.resolve(p));
if (!publishDir || !stateDir) {
  console.error("usage: node tools/prepare-state.js PUBLISH_DIR STATE_DIR");
  process.exit(2);
}
mkdirSync(stateDir, { recursive: true });
const indexes = publishedShardMap(publishDir)?.indexes ?? [];
const reused = reuseOrReset(stateDir, publishDir);
const mf = new Miniflare(miniflareOptions({ indexes, persistRoot: stateDir }));
try {
  await mf.ready;
  const marker = reused ?? await loadInto(mf, publishDir, stateDir, { indexes });
  console.log(`loaded ${publishDir} in ${marker.seconds} s: ${JSON.stringify(marker.summary)}`);
} catch (e) {
  console.error(`prepare-state: ${e instanceof PublishLoadError ? e.message : e.stack}`);
  process.exitCode = 1;
} finally {
  await mf.dispose();
}
