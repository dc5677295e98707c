// robit-sandbox: evaluated by QuickJS (`qjs -I`) before the user's script.
// QuickJS-ng only has `console.log`, and it prints objects as "[object Object]";
// scripts written for Node or browsers expect the other console methods, a
// readable rendering of objects, and `setTimeout`. Output is flushed on every
// call so that what a script printed before being stopped is not lost.
(() => {
  const quote = (s) =>
    "'" + s.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n") + "'";
  const fmt = (v, depth, seen, top) => {
    if (typeof v === "string") return top ? v : quote(v);
    if (typeof v === "function") return `[Function: ${v.name || "(anonymous)"}]`;
    if (typeof v === "bigint") return `${v}n`;
    if (typeof v === "symbol") return v.toString();
    if (v === null || typeof v !== "object") return String(v);
    if (seen.includes(v)) return "[Circular]";
    if (v instanceof Error) return v.stack ? `${v}\n${v.stack}`.trimEnd() : String(v);
    if (v instanceof Date) return isNaN(v) ? "Invalid Date" : v.toISOString();
    if (v instanceof RegExp) return String(v);
    if (depth > 2) return Array.isArray(v) ? "[Array]" : "[Object]";
    const next = [...seen, v];
    const f = (x) => fmt(x, depth + 1, next, false);
    if (Array.isArray(v)) return v.length ? `[ ${v.map(f).join(", ")} ]` : "[]";
    if (v instanceof Map)
      return `Map(${v.size}) {${v.size ? " " + [...v].map(([k, x]) => `${f(k)} => ${f(x)}`).join(", ") + " " : ""}}`;
    if (v instanceof Set)
      return `Set(${v.size}) {${v.size ? " " + [...v].map(f).join(", ") + " " : ""}}`;
    const key = (k) => (/^[A-Za-z_$][\w$]*$/.test(k) ? k : quote(k));
    const body = Object.keys(v).map((k) => `${key(k)}: ${f(v[k])}`).join(", ");
    return body ? `{ ${body} }` : "{}";
  };
  const line = (args) => args.map((a) => fmt(a, 0, [], true)).join(" ") + "\n";
  const to = (file) => (...args) => {
    file.puts(line(args));
    file.flush();
  };
  const out = to(std.out);
  const err = to(std.err);
  Object.assign(console, { log: out, info: out, debug: out, error: err, warn: err, trace: err });
  globalThis.setTimeout ??= os.setTimeout;
  globalThis.clearTimeout ??= os.clearTimeout;
})();
