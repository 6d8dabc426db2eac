/**
 * sql.js (SQLite compiled to WASM) for reading R2 shards. Workers may not compile WASM from bytes at run
 * time, so the .wasm is imported as a module (wrangler and Miniflare give a compiled WebAssembly.Module)
 * and instantiated through Emscripten's instantiateWasm hook. One instance per isolate.
 */
import initSqlJs from "sql.js/dist/sql-wasm.js";
import sqlWasm from "sql.js/dist/sql-wasm.wasm";

/** @type {Promise<any> | null} */
let sqlPromise = null;

export function sqlJs() {
  sqlPromise ??= initSqlJs({
    instantiateWasm(imports, done) {
      const instance = new WebAssembly.Instance(sqlWasm, imports);
      done(instance, sqlWasm);
      return instance.exports;
    },
  }).catch((e) => {
    sqlPromise = null;
    throw e;
  });
  return sqlPromise;
}
