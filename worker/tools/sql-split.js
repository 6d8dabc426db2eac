/**
 * Splits an SQL import file into statements at the `;` that end them — outside quotes ('…' with '',
 * "…", `…`, […]) and comments (-- … and /* … *\/) — because D1's exec() splits on newlines and a literal
 * may hold ";\n". Returns each statement without its `;`, with the line it starts on.
 * @param {string} text
 * @returns {{sql: string, line: number}[]}
 */
export function splitStatements(text) {
  const out = [];
  let start = 0;
  let line = 1;
  let startLine = 1;
  let i = 0;
  const n = text.length;
  const push = (end) => {
    const sql = text.slice(start, end).trim();
    if (sql !== "" && !/^(--[^\n]*\n?|\/\*[\s\S]*?\*\/|\s)*$/.test(sql)) out.push({ sql, line: startLine });
  };
  while (i < n) {
    const c = text[i];
    if (c === "\n") line++;
    if (c === "'" || c === '"' || c === "`" || c === "[") {
      const close = c === "[" ? "]" : c;
      i++;
      while (i < n) {
        if (text[i] === "\n") line++;
        if (text[i] === close) {
          if (close !== "]" && text[i + 1] === close) {
            i += 2;
            continue;
          }
          break;
        }
        i++;
      }
      if (i >= n) throw new Error(`unterminated ${c} quote starting before line ${line}`);
      i++;
      continue;
    }
    if (c === "-" && text[i + 1] === "-") {
      while (i < n && text[i] !== "\n") i++;
      continue;
    }
    if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      if (end < 0) throw new Error(`unterminated /* comment before line ${line}`);
      for (let j = i; j < end; j++) if (text[j] === "\n") line++;
      i = end + 2;
      continue;
    }
    if (c === ";") {
      push(i);
      start = i + 1;
      startLine = line;
      // the next statement starts on the next non-blank line
      let j = start;
      while (j < n && /\s/.test(text[j])) {
        if (text[j] === "\n") startLine++;
        j++;
      }
    }
    i++;
  }
  push(n);
  return out;
}

/** Statements Cloudflare's D1 import refuses (transactions are D1's own; see cloudflare-api.md). */
export const TRANSACTION_STATEMENT = /^(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b/i;
