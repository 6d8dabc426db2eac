// scripts/worker-local.sh: one command serves a publish directory on 127.0.0.1, keeps its state across
// restarts, reloads a republish, and leaves the access log in a plain SQLite file the promotion job reads.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { WORKER_DIR } from "../tools/miniflare-options.js";
import { pickFeatures, publishedSource } from "./helpers.js";

const SCRIPT = path.join(WORKER_DIR, "..", "scripts", "worker-local.sh");
const START_TIMEOUT_MS = 120_000;
let src;
let state;
let publish; // a copy: the test touches a file to see a republish reloaded
const running = new Set();

before(async () => {
  src = await publishedSource();
  state = mkdtempSync(path.join(tmpdir(), "aria-state-"));
  publish = path.join(mkdtempSync(path.join(tmpdir(), "aria-publish-copy-")), "publish");
  cpSync(src.dir, publish, { recursive: true });
});
after(() => {
  for (const child of running) child.kill("SIGTERM");
});

/** Removes a key from the publish copy's KV payloads (the file stays a valid bulk payload). */
function dropKvKey(key) {
  for (const f of readdirSync(path.join(publish, "kv")).filter((n) => n.endsWith(".json"))) {
    const file = path.join(publish, "kv", f);
    const items = JSON.parse(readFileSync(file, "utf8"));
    const kept = items.filter((item) => item.key !== key);
    if (kept.length !== items.length) writeFileSync(file, JSON.stringify(kept));
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts the script; resolves with the child and its output once it printed "ready". */
async function start() {
  const port = await freePort();
  const child = spawn("bash", [SCRIPT, publish, String(port)], {
    env: { ...process.env, WORKER_STATE_DIR: state },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let output = "";
  await new Promise((resolve, reject) => {
    const late = () => reject(new Error(`no "ready" within ${START_TIMEOUT_MS} ms:\n${output}`));
    const timer = setTimeout(late, START_TIMEOUT_MS);
    const onData = (chunk) => {
      output += chunk;
      if (/^ready$/m.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (chunk) => (output += chunk));
    child.once("exit", (code) => reject(new Error(`exited ${code} before ready:\n${output}`)));
  });
  return { child, port, output: () => output };
}

function stop(child) {
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
    child.kill("SIGTERM");
  });
}

const getJson = async (port, p) => {
  const res = await fetch(`http://127.0.0.1:${port}${p}`);
  return { status: res.status, body: await res.json() };
};

describe("scripts/worker-local.sh", () => {
  test("serves, keeps write-backs across a restart, reloads a republish, leaves the access log in SQLite", async () => {
    const inD1 = (i) => src.d1("SELECT 1 FROM spotify_audio_features_cache WHERE spotify_id = ?", [i]).length > 0;
    const hasXref = (i) => src.d1("SELECT 1 FROM spotify_mbid_xref WHERE spotify_id = ?", [i]).length > 0;
    const ids = [...src.shardRows.keys()];
    const id = ids.find((i) => !inD1(i) && hasXref(i)) ?? ids.find((i) => !inD1(i)) ?? ids[0];
    const coldSource = inD1(id) ? "d1" : "r2";
    dropKvKey(`spotify:af:${id}`); // a small publish pre-warms every track: this one is not in KV

    const first = await start();
    assert.match(first.output(), /loaded /);
    const cold = await getJson(first.port, `/tracks/${id}/features`);
    assert.equal(cold.status, 200);
    assert.deepEqual(cold.body, { spotify_id: id, source: coldSource, features: pickFeatures(src.shardRows.get(id).row) });
    const xref = await getJson(first.port, `/xref/spotify/${id}`);
    assert.equal(xref.status, hasXref(id) ? 200 : 404);
    assert.equal((await getJson(first.port, `/tracks/${id}/similar?limit=2`)).body.results.length, 2);
    const stopped = await stop(first.child);
    assert.ok(stopped.code === 143 || stopped.signal === "SIGTERM", `stopped by SIGTERM (${JSON.stringify(stopped)})`);

    const second = await start();
    assert.match(second.output(), /already holds/);
    const warm = await getJson(second.port, `/tracks/${id}/features`);
    assert.equal(warm.body.source, "kv", "the KV write-back survived the restart");
    const d1File = second.output().match(/^D1 \(track_access_log for the promotion job\): (.+)$/m)?.[1];
    await stop(second.child);

    // A republish (any published file changed) reloads: KV and R2 anew, D1 through its import files.
    const kvFile = path.join(publish, "kv", readdirSync(path.join(publish, "kv")).sort()[0]);
    utimesSync(kvFile, new Date(), new Date(Date.now() + 5000));
    const third = await start();
    assert.match(third.output(), /loaded /);
    const again = await getJson(third.port, `/tracks/${id}/features`);
    assert.equal(again.body.source, coldSource, "the write-backs went with the old publish");
    await stop(third.child);

    assert.ok(d1File, "the script names its D1 file");
    const rows = JSON.parse(execFileSync("python3", ["-c", `import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(json.dumps([list(r) for r in db.execute(
    "SELECT t.spotify_id, t.access_count, t.vectorized, c.spotify_id IS NOT NULL FROM track_access_log t "
    "LEFT JOIN spotify_audio_features_cache c USING (spotify_id) WHERE t.access_count >= 1")]))`, d1File],
    { encoding: "utf8" }));
    const mine = rows.find((r) => r[0] === id);
    assert.ok(mine, "the access-log row is in the persisted D1");
    assert.ok(mine[1] >= 3, `counted every lookup across the republish (${mine[1]})`);
    assert.equal(mine[2], 0, "not vectorized yet");
    assert.equal(mine[3], 1, "joined with the written-back features, as the promotion query does");
  });

  test("refuses a directory that is not a publish", async () => {
    const res = await new Promise((resolve) => {
      const child = spawn("bash", [SCRIPT, tmpdir(), "1"], { stdio: ["ignore", "pipe", "pipe"] });
      let err = "";
      child.stderr.on("data", (c) => (err += c));
      child.once("exit", (code) => resolve({ code, err }));
    });
    assert.equal(res.code, 2);
    assert.match(res.err, /not a publish directory/);
  });
});
