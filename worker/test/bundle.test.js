// What deploys: wrangler bundles src/ with wrangler.toml (offline, --dry-run), and the bundle answers in
// workerd like the source modules do.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { WORKER_DIR } from "../tools/miniflare-options.js";
import { coldTrack, pickFeatures, publishedSource, startWorker } from "./helpers.js";

let out;
let wranglerOutput;
let w;
let src;

before(async () => {
  src = await publishedSource();
  out = mkdtempSync(path.join(tmpdir(), "aria-bundle-"));
  const wrangler = path.join(WORKER_DIR, "node_modules", "wrangler", "bin", "wrangler.js");
  const { stdout } = await promisify(execFile)(process.execPath, [wrangler, "deploy", "--dry-run", "--outdir", out], {
    cwd: WORKER_DIR,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1",
      WRANGLER_LOG_PATH: path.join(out, "logs") },
  });
  wranglerOutput = stdout;
  w = await startWorker((options) => {
    const { modules: _sources, modulesRoot: _root, ...rest } = options.workers[0];
    options.workers[0] = {
      ...rest,
      modules: true,
      modulesRoot: out,
      scriptPath: path.join(out, "index.js"),
      modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    };
    return options;
  });
});
after(() => w?.close());

describe("wrangler bundle", () => {
  test("declares the four bindings and ships sql.js's wasm as a module", () => {
    for (const binding of ["SPOTIFY_CACHE", "SPOTIFY_KV", "SPOTIFY_STORAGE", "SPOTIFY_VECTORS"]) {
      assert.match(wranglerOutput, new RegExp(`env\\.${binding}\\b`), binding);
    }
    assert.ok(readdirSync(out).some((f) => f.endsWith(".wasm")), "a .wasm module beside index.js");
  });

  test("the bundle serves a cold-tier lookup and a Vectorize query", async () => {
    const id = await coldTrack(w, src);
    const res = await w.mf.dispatchFetch(`http://worker.test/tracks/${id}/features`);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.source, "r2");
    assert.deepEqual(body.features, pickFeatures(src.shardRows.get(id).row));
    const sim = await w.mf.dispatchFetch(`http://worker.test/tracks/${id}/similar?limit=3`);
    assert.equal(sim.status, 200);
    assert.equal((await sim.json()).results.length, 3);
  });
});
