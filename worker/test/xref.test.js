// GET /xref/spotify/{id}, GET /xref/isrc/{isrc}, and the router's errors.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eventually, publishedSource, startWorker, unknownId } from "./helpers.js";

const FIELDS = ["spotify_id", "isrc", "mbid", "match_confidence", "match_method"];
let w;
let src;
before(async () => {
  [w, src] = await Promise.all([startWorker(), publishedSource()]);
});
after(() => w?.close());

const xrefRow = (id) => src.d1(`SELECT ${FIELDS.join(", ")} FROM spotify_mbid_xref WHERE spotify_id = ?`, [id])[0];

describe("xref by Spotify id", () => {
  test("KV spotify:xref answers the published value", async () => {
    const key = [...src.kv.keys()].find((k) => k.startsWith("spotify:xref:"));
    assert.ok(key, "the publish has a spotify:xref key");
    const id = key.slice("spotify:xref:".length);
    const res = await w.get(`/xref/spotify/${id}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-aria-source"), "kv");
    assert.deepEqual(res.body, src.kvJson(key));
    assert.deepEqual(res.body, xrefRow(id), "KV agrees with D1");
  });

  test("D1 answers when KV has no entry, and caches it in KV for 30 days", async () => {
    const id = src.d1("SELECT spotify_id FROM spotify_mbid_xref ORDER BY spotify_id DESC LIMIT 1")[0].spotify_id;
    await w.kv.delete(`spotify:xref:${id}`);
    const res = await w.get(`/xref/spotify/${id}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-aria-source"), "d1");
    assert.deepEqual(res.body, xrefRow(id));
    assert.deepEqual(await eventually(() => w.kv.get(`spotify:xref:${id}`, "json")), xrefRow(id));
    const { keys } = await w.kv.list({ prefix: `spotify:xref:${id}` });
    assert.ok(Math.abs(keys[0].expiration - (Date.now() / 1000 + 30 * 24 * 3600)) < 600);
  });

  test("a published track without a match 404s (publish loads matches only); unknown 404; malformed 400", async () => {
    const unmatched = [...src.shardRows.keys()].find((id) => !xrefRow(id));
    assert.ok(unmatched, "a published track without a match");
    const none = await w.get(`/xref/spotify/${unmatched}`);
    assert.equal(none.status, 404);
    assert.match(none.body.error, /no cross-reference/);
    assert.equal(src.d1("SELECT COUNT(*) AS n FROM spotify_mbid_xref WHERE mbid IS NULL")[0].n, 0, "matches only");
    const unknown = await w.get(`/xref/spotify/${unknownId(src)}`);
    assert.equal(unknown.status, 404);
    assert.equal(typeof unknown.body.error, "string");
    assert.equal((await w.get("/xref/spotify/short")).status, 400);
  });
});

// Publish stores the normalised code when the ISRC has one (docs/publish-layout.md), else Spotify's spelling.
const VALID_ISRC = "isrc GLOB '[A-Z][A-Z][A-Z0-9][A-Z0-9][A-Z0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]'";

describe("xref by ISRC", () => {
  const matches = (isrc) => src.d1(`SELECT ${FIELDS.join(", ")} FROM spotify_mbid_xref WHERE isrc = ?`, [isrc])
    .sort((a, b) => (b.match_confidence ?? -1) - (a.match_confidence ?? -1) || (a.spotify_id < b.spotify_id ? -1 : 1));

  test("every Spotify track of an ISRC, best match first; then from KV", async () => {
    const shared = src.d1(`SELECT isrc FROM spotify_mbid_xref WHERE ${VALID_ISRC} GROUP BY isrc HAVING COUNT(*) > 1
      ORDER BY 1 LIMIT 1`)[0] ?? src.d1(`SELECT isrc FROM spotify_mbid_xref WHERE ${VALID_ISRC} ORDER BY isrc LIMIT 1`)[0];
    const res = await w.get(`/xref/isrc/${shared.isrc}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-aria-source"), "d1");
    assert.deepEqual(res.body, { isrc: shared.isrc, matches: matches(shared.isrc) });
    await eventually(() => w.kv.get(`spotify:isrc:${shared.isrc}`));
    const again = await w.get(`/xref/isrc/${shared.isrc}`);
    assert.equal(again.headers.get("x-aria-source"), "kv");
    assert.deepEqual(again.body, res.body);
  });

  test("ISRCs are matched as the xref job normalises them (case, hyphens)", async () => {
    const { isrc } = src.d1(`SELECT isrc FROM spotify_mbid_xref WHERE ${VALID_ISRC} ORDER BY isrc DESC LIMIT 1`)[0];
    const spelled = `${isrc.slice(0, 2)}-${isrc.slice(2, 5)}-${isrc.slice(5, 7)}-${isrc.slice(7)}`.toLowerCase();
    const res = await w.get(`/xref/isrc/${spelled}`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { isrc, matches: matches(isrc) });
  });

  test("malformed ISRCs 400, unknown ones 404", async () => {
    for (const bad of ["US123", "1SABC2400001", "USABC24000011", "US%20ABC"]) {
      assert.equal((await w.get(`/xref/isrc/${bad}`)).status, 400, bad);
    }
    const res = await w.get("/xref/isrc/ZZZZZ9999999");
    assert.equal(res.status, 404);
    assert.match(res.body.error, /ISRC/);
  });
});

describe("router", () => {
  test("unknown paths 404 and other methods 405, always JSON", async () => {
    for (const p of ["/", "/tracks", "/tracks/x/y/z", "/xref/mbid/abc"]) {
      const res = await w.get(p);
      assert.equal(res.status, 404, p);
      assert.equal(typeof res.body.error, "string");
    }
    const id = [...src.shardRows.keys()][0];
    const post = await w.get(`/tracks/${id}/features`, { method: "POST", body: "{}" });
    assert.equal(post.status, 405);
    assert.equal(typeof post.body.error, "string");
  });
});
