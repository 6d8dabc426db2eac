// The promotion round trip (spec "Dynamic Vector Promotion") on a pipeline's own output: the Worker's lookups
// write track_access_log into Miniflare's persisted D1, tools/export_access_log.py carries the rows into the
// local target's d1.sqlite, `./spark-submit.sh promote` upserts the tracks read often enough into the
// Vectorize NDJSON with promoted: true and marks them vectorized = 1.
//
// It changes PUBLISH_DIR (a promoted NDJSON file, d1.sqlite) and WAREHOUSE_DIR (promote's ledger): run-tests.sh
// runs it after the other tests, and only with PROMOTE_ROUND_TRIP=1 (as .ci/run does on its throwaway run).
// Promote runs with the default configuration and the two paths; ARIA_VENV is passed through.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { WORKER_DIR } from "../tools/miniflare-options.js";
import { eventually, goldExpectations, makeCold, publishedSource, startWorker } from "./helpers.js";

const THRESHOLD = 3; // promote.access_threshold, set explicitly below
const PROMOTED = 3; // tracks read THRESHOLD times; one more is read THRESHOLD - 1 times and must stay out
const PROMOTE_TIMEOUT_MS = 15 * 60_000;
const ROOT = path.resolve(WORKER_DIR, "..");

let gold;
let src;
let w;
let work;

before(async () => {
  gold = goldExpectations();
  assert.ok(gold && process.env.WAREHOUSE_DIR, "the round trip needs WAREHOUSE_DIR (run-tests.sh exports WORKER_GOLD)");
  [w, src] = await Promise.all([startWorker(), publishedSource()]);
  assert.ok(w.persistRoot, "the round trip needs a persisted state (run-tests.sh prepares WORKER_TEST_STATE)");
  work = mkdtempSync(path.join(tmpdir(), "aria-promote-work-"));
});
after(async () => {
  await w?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The published Vectorize records (every NDJSON line of every index), id → {index, record}. */
function vectorRecords(dir) {
  const out = new Map();
  for (const index of src.shardMap.indexes) {
    const folder = path.join(dir, "vectorize", index);
    for (const f of readdirSync(folder).filter((n) => n.endsWith(".ndjson"))) {
      for (const line of readFileSync(path.join(folder, f), "utf8").split("\n").filter(Boolean)) {
        const record = JSON.parse(line);
        assert.ok(!out.has(record.id), `${record.id} is in more than one NDJSON line`);
        out.set(record.id, { index, record });
      }
    }
  }
  return out;
}

/** track_access_log of the local target's d1.sqlite, read as promote reads it (Python's sqlite3). */
function localAccessLog(dir) {
  const script = `import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(json.dumps({r[0]: {"access_count": r[1], "vectorized": r[2], "promoted_at": r[3]} for r in db.execute(
    "SELECT spotify_id, access_count, vectorized, promoted_at FROM track_access_log")}))`;
  return JSON.parse(execFileSync("python3", ["-c", script, path.join(dir, "d1.sqlite")], { encoding: "utf8" }));
}

const shardOf = (id, count) => parseInt(createHash("sha256").update(id).digest("hex").slice(0, 8), 16) % count;

describe("promote round trip", () => {
  test("the Worker's access log → export → promote → promoted vectors and vectorized = 1", { timeout: PROMOTE_TIMEOUT_MS }, async () => {
    // Tracks gold has a vector for that Vectorize does not hold yet (tier B/C), read through the Worker.
    const published = vectorRecords(src.dir);
    const outside = Object.entries(gold.vectors)
      .filter(([id, v]) => v.tier !== "A" && !published.has(id) && src.shardRows.has(id)).map(([id]) => id);
    assert.ok(outside.length > PROMOTED, `gold has ${outside.length} sampled tracks outside Vectorize`);
    const hot = outside.slice(0, PROMOTED);
    const lukewarm = outside[PROMOTED];
    for (const [id, reads] of [...hot.map((id) => [id, THRESHOLD]), [lukewarm, THRESHOLD - 1]]) {
      await makeCold(w, id);
      for (let i = 0; i < reads; i++) {
        const res = await w.get(`/tracks/${id}/features`);
        assert.equal(res.status, 200, id);
        if (i === 0) assert.equal(res.body.source, "r2", `${id}: the first read is an R2 hit`);
      }
      const logged = await eventually(async () => {
        const row = await w.d1.prepare("SELECT access_count FROM track_access_log WHERE spotify_id = ?").bind(id).first();
        return row?.access_count === reads ? row : null;
      });
      assert.ok(logged, `${id}: ${reads} accesses logged in Miniflare's D1`);
    }
    await w.stop(); // workerd stops: its D1 file is complete

    const exported = execFileSync("python3", [path.join(WORKER_DIR, "tools", "export_access_log.py"),
      "--state", w.persistRoot, src.dir], { encoding: "utf8" });
    assert.match(exported, /exported \d+ access-log rows/);
    const carried = localAccessLog(src.dir);
    for (const id of hot) assert.equal(carried[id]?.access_count, THRESHOLD, `${id} carried into d1.sqlite`);
    assert.equal(carried[lukewarm]?.access_count, THRESHOLD - 1);

    const summary = JSON.parse(execFileSync(path.join(ROOT, "spark-submit.sh"), ["promote", "--json",
      "--set", `paths.warehouse=${process.env.WAREHOUSE_DIR}`, "--set", `publish.local_dir=${src.dir}`,
      "--set", `paths.work=${work}`, "--set", `promote.access_threshold=${THRESHOLD}`],
    { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 64 * 1024 * 1024 }));
    const before = localAccessLog(src.dir);

    const after = vectorRecords(src.dir);
    const promoted = [...after].filter(([, v]) => v.record.metadata?.promoted === true).map(([id]) => id).sort();
    assert.deepEqual(promoted, [...hot].sort(), "exactly the tracks read often enough are promoted");
    assert.equal(summary.metrics.promoted, PROMOTED);
    for (const id of hot) {
      const { index, record } = after.get(id);
      assert.equal(index, src.shardMap.indexes[shardOf(id, src.shardMap.shard_count)], `${id}: the index its id hashes to`);
      assert.equal(record.values.length, gold.vectors[id].vector.length);
      record.values.forEach((x, i) => assert.ok(Math.abs(x - gold.vectors[id].vector[i]) < 1e-6,
        `${id} component ${i}: ${x} vs gold ${gold.vectors[id].vector[i]}`));
      assert.equal(before[id].vectorized, 1, `${id}: vectorized = 1 in the access log`);
      assert.ok(Math.abs(before[id].promoted_at - Date.now() / 1000) < 3600, `${id}: promoted_at is now`);
    }
    assert.equal(before[lukewarm].vectorized, 0, "below the threshold: not promoted");
    assert.ok(!after.has(lukewarm));
    for (const [id, v] of published) assert.deepEqual(after.get(id)?.record, v.record, `${id} unchanged`);

    // A repeat export (the Worker still counts) keeps promote's marks.
    execFileSync("python3", [path.join(WORKER_DIR, "tools", "export_access_log.py"), "--state", w.persistRoot, src.dir]);
    for (const id of hot) assert.equal(localAccessLog(src.dir)[id].vectorized, 1, `${id} stays vectorized`);
  });
});
