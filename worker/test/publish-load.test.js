// Loading the publish directory into Miniflare: the D1 import files are valid for Cloudflare's SQLite
// and reproduce the spec's tables; KV, R2 and the Vectorize stand-in hold exactly what was published.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Miniflare } from "miniflare";
import initSqlJs from "sql.js";
import { loadD1Directory, loadPublish, PublishLoadError } from "../tools/load-publish.js";
import { miniflareOptions } from "../tools/miniflare-options.js";
import { splitStatements } from "../tools/sql-split.js";
import { isFixture, publishedSource, startWorker } from "./helpers.js";

// The spec's "D1 Schema" section, plus playlist_cooccurrence.score (docs/publish-layout.md): the contract.
const SPEC_COLUMNS = {
  spotify_mbid_xref: ["spotify_id", "isrc", "mbid", "match_confidence", "match_method", "created_at", "updated_at"],
  spotify_audio_features_cache: ["spotify_id", "tempo", "time_signature", "key", "mode", "loudness", "energy",
    "danceability", "speechiness", "acousticness", "instrumentalness", "liveness", "valence", "duration_ms",
    "popularity", "cached_at"],
  playlist_cooccurrence: ["track_a", "track_b", "cooccurrence_count", "pmi_score", "jaccard_score", "score"],
  spotify_artist_genres: ["spotify_artist_id", "genre"],
  track_access_log: ["spotify_id", "access_count", "last_accessed", "vectorized", "promoted_at"],
  precomputed_similar: ["seed_spotify_id", "similar_spotify_id", "similarity_score", "rank"],
};
const SPEC_INDEXES = ["idx_xref_isrc", "idx_xref_mbid", "idx_cooccur_a", "idx_cooccur_b", "idx_genre",
  "idx_access_promotion", "idx_precomputed_seed"];
const PRIMARY_KEYS = {
  spotify_mbid_xref: "spotify_id",
  spotify_audio_features_cache: "spotify_id",
  playlist_cooccurrence: "track_a, track_b",
  spotify_artist_genres: "spotify_artist_id, genre",
  track_access_log: "spotify_id",
  precomputed_similar: "seed_spotify_id, similar_spotify_id",
};

const KV_VALUE_SAMPLE = 300; // values read back one proxy call each: a sample of a large publish
let w;
let src;
before(async () => {
  [w, src] = await Promise.all([startWorker(), publishedSource()]);
});
after(() => w?.close());

function assertRowClose(actual, expected, what) {
  assert.deepEqual(Object.keys(actual), Object.keys(expected), what);
  for (const [k, v] of Object.entries(expected)) {
    const a = actual[k];
    if (typeof v === "number" && typeof a === "number" && !Number.isInteger(v)) {
      assert.ok(Math.abs(a - v) <= 1e-12 * Math.max(1, Math.abs(v)), `${what}.${k}: ${a} vs ${v}`);
    } else {
      assert.equal(a, v, `${what}.${k}`);
    }
  }
}

const d1All = async (sql) => (await w.d1.prepare(sql).all()).results;

describe("D1 import files", () => {
  test("create the spec's six tables with its columns and indexes, and nothing left as __next", async () => {
    const tables = (await d1All("SELECT name FROM sqlite_master WHERE type = 'table' "
      + "AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"))
      .map((r) => r.name);
    assert.deepEqual(tables, Object.keys(SPEC_COLUMNS).sort());
    for (const [table, columns] of Object.entries(SPEC_COLUMNS)) {
      const got = (await d1All(`PRAGMA table_info(${table})`)).map((c) => c.name);
      assert.deepEqual(got.sort(), [...columns].sort(), table);
    }
    const indexes = (await d1All(
      "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx\\_%' ESCAPE '\\'",
    )).map((r) => r.name);
    assert.deepEqual(indexes.sort(), [...SPEC_INDEXES].sort());
  });

  test("Miniflare's D1 holds what SQLite makes of the same files (and the local target's d1.sqlite)", async () => {
    const candidates = [path.join(src.dir, "d1.sqlite"), path.join(src.dir, "d1", "d1.sqlite")];
    const sqliteFile = candidates.find(existsSync);
    const S = await initSqlJs();
    const local = sqliteFile ? new S.Database(readFileSync(sqliteFile)) : null;
    for (const [table, key] of Object.entries(PRIMARY_KEYS)) {
      // d1.sqlite's access log is promote's copy of the Worker's (tools/export_access_log.py), not the files'.
      const compareLocal = local && table !== "track_access_log";
      const sql = `SELECT ${SPEC_COLUMNS[table].filter((c) => !/(created|updated|cached)_at/.test(c)).join(", ")} `
        + `FROM ${table} ORDER BY ${key}`;
      const expected = src.d1(sql);
      assert.deepEqual(await d1All(sql), expected, table);
      if (compareLocal) {
        const rows = [];
        const st = local.prepare(sql);
        while (st.step()) rows.push(st.getAsObject());
        st.free();
        // Python's sqlite3 (SQLite 3.40 here) can parse a decimal literal one ulp away from newer SQLite
        // (workerd's D1, sql.js): REALs in d1.sqlite are compared to 1e-12, not bit for bit.
        assert.equal(rows.length, expected.length, `${table} in ${path.basename(sqliteFile)}`);
        rows.forEach((row, i) => assertRowClose(row, expected[i], `${table} in ${path.basename(sqliteFile)} row ${i}`));
      }
    }
    local?.close();
  });

  test("every statement is within D1's limits (the loader checks them; D1 would refuse)", () => {
    assert.ok(w.loaded.d1_statements > 0);
    // Miniflare's D1 enforces the same statement limit and refuses transactions, so these are Cloudflare's rules.
    return Promise.all([
      assert.rejects(w.d1.prepare(`SELECT '${"x".repeat(100_001)}'`).first(), /SQLITE_TOOBIG|too long/),
      assert.rejects(w.d1.prepare("BEGIN TRANSACTION").run(), /transaction/i),
    ]);
  });

  test("re-running the import files (the next publish) keeps track_access_log", async () => {
    await w.d1.prepare("INSERT INTO track_access_log (spotify_id, access_count, last_accessed) "
      + "VALUES ('keepme', 7, 1)").run();
    await loadD1Directory(w.mf, src.dir);
    const row = await w.d1.prepare("SELECT access_count FROM track_access_log WHERE spotify_id = 'keepme'").first();
    assert.equal(row?.access_count, 7);
    await w.d1.prepare("DELETE FROM track_access_log WHERE spotify_id = 'keepme'").run();
  });
});

describe("KV, R2 and Vectorize loads", () => {
  test("every KV payload key is stored with its TTL; a sample of values byte for byte", async () => {
    const stored = new Map();
    let cursor;
    do {
      const page = await w.kv.list({ cursor });
      for (const k of page.keys) stored.set(k.name, k.expiration);
      cursor = page.list_complete ? undefined : page.cursor;
    } while (cursor);
    const now = Date.now() / 1000;
    const keys = [...src.kv.keys()];
    for (const key of keys) {
      const item = src.kv.get(key);
      assert.ok(stored.has(key), key);
      if (item.expiration_ttl) assert.ok(Math.abs(stored.get(key) - (now + item.expiration_ttl)) < 600, key);
      else assert.equal(stored.get(key), undefined, `${key} has no TTL`);
    }
    const step = Math.max(1, Math.floor(keys.length / KV_VALUE_SAMPLE));
    for (let i = 0; i < keys.length; i += step) assert.equal(await w.kv.get(keys[i]), src.kv.get(keys[i]).value, keys[i]);
  });

  test("R2 holds every published object byte for byte; the manifest describes its shards", async () => {
    const bucket = await w.mf.getR2Bucket("SPOTIFY_STORAGE");
    const S = await initSqlJs();
    for (const entry of src.manifest.shards) {
      const file = readFileSync(path.join(src.dir, "r2", ...entry.key.split("/")));
      const stored = Buffer.from(await (await bucket.get(entry.key)).arrayBuffer());
      assert.ok(stored.equals(file), entry.key);
      assert.equal(entry.bytes, file.length, `${entry.key} bytes`);
      assert.equal(entry.sha256, createHash("sha256").update(file).digest("hex"), `${entry.key} sha256`);
      const db = new S.Database(file);
      const [[rows, first, last]] = db.exec("SELECT COUNT(*), MIN(spotify_id), MAX(spotify_id) FROM tracks")[0].values;
      db.close();
      assert.deepEqual([rows, first, last], [entry.rows, entry.first_id, entry.last_id], entry.key);
    }
    // The fixture has three shards; a small pipeline sample may fit in one (publish.r2_shard_bytes).
    if (isFixture()) assert.ok(src.manifest.shards.length >= 2, "the cold tier is sharded");
  });
});

describe("the loader refuses import files Cloudflare would refuse", () => {
  let scratch; // a separate, empty Miniflare: the refused files must not touch the publish under test
  before(async () => {
    scratch = new Miniflare(miniflareOptions());
    await scratch.ready;
  });
  after(() => scratch?.dispose());
  const broken = (files) => {
    const dir = mkdtempSync(path.join(tmpdir(), "aria-broken-"));
    mkdirSync(path.join(dir, "d1"));
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, "d1", name), text);
    return dir;
  };
  const refuses = (files, pattern) => assert.rejects(loadPublish(scratch, broken(files)), (e) => {
    assert.ok(e instanceof PublishLoadError, e.stack);
    assert.match(e.message, pattern);
    return true;
  });

  test("a transaction statement", () => refuses({ "0001-a.sql": "CREATE TABLE t1 (x);\nBEGIN TRANSACTION;\nCOMMIT;\n" },
    /0001-a\.sql statement 2 \(line 2\).*transaction/));
  test("a statement over 100,000 bytes", () => refuses({ "0001-a.sql": `SELECT '${"y".repeat(100_000)}';\n` },
    /0001-a\.sql statement 1.*100000/));
  test("a statement D1 refuses, named by file and number", () => refuses(
    {
      "0001-a.sql": "CREATE TABLE t2 (x);\n",
      "0002-b.sql": "INSERT INTO t2 VALUES (1);\nINSERT INTO nowhere VALUES (1);\n",
    },
    /0002-b\.sql statement 2 \(line 2\): D1 refused it.*nowhere/));
});

describe("statement splitter", () => {
  test("splits at ; outside quotes and comments, with start lines", () => {
    const text = "CREATE TABLE a (x);\nINSERT INTO a VALUES ('a;\nb''c'), (\"q;\");\n"
      + "-- c; d\n/* e; */ SELECT 1;\n\nSELECT [a;b]";
    assert.deepEqual(splitStatements(text), [
      { sql: "CREATE TABLE a (x)", line: 1 },
      { sql: "INSERT INTO a VALUES ('a;\nb''c'), (\"q;\")", line: 2 },
      { sql: "-- c; d\n/* e; */ SELECT 1", line: 4 },
      { sql: "SELECT [a;b]", line: 7 },
    ]);
    assert.deepEqual(splitStatements("-- only a comment;\n  \n"), []);
    assert.throws(() => splitStatements("SELECT 'open;\n"), /unterminated/);
  });
});
