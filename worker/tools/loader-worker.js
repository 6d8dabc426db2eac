/**
 * A helper Worker used only while loading a publish directory (tools/load-publish.js): it binds the same
 * D1 database and KV namespace as the Worker and applies batches sent from Node in one request each —
 * through Miniflare's per-call Node proxy a KV put costs ~20 ms, so 40,000 keys would take minutes.
 *   POST /d1   {"statements": [sql, ...]}  → one D1 batch (a transaction)
 *   POST /kv   {"items": [{key, value, base64?, expiration_ttl?, expiration?, metadata?}]}
 * Errors answer 422 {"error", "index"?} with the binding's message.
 */
function base64Bytes(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    const body = await request.json();
    try {
      if (pathname === "/d1") {
        await env.DB.batch(body.statements.map((sql) => env.DB.prepare(sql)));
        return Response.json({ applied: body.statements.length });
      }
      if (pathname === "/kv") {
        await Promise.all(body.items.map((item) => {
          const options = {};
          if (item.expiration_ttl != null) options.expirationTtl = item.expiration_ttl;
          if (item.expiration != null) options.expiration = item.expiration;
          if (item.metadata !== undefined) options.metadata = item.metadata;
          return env.KV.put(item.key, item.base64 ? base64Bytes(item.value) : item.value, options);
        }));
        return Response.json({ stored: body.items.length });
      }
      return Response.json({ error: `no loader endpoint ${pathname}` }, { status: 404 });
    } catch (e) {
      return Response.json({ error: String(e?.message ?? e) }, { status: 422 });
    }
  },
};
