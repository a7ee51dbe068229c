// Writes every compat case as NAME.js + NAME.input.json into OUTDIR, and
// `combined.js`, the ~1.4 MB handler of several bundles the benchmarks use.
// usage: node make-handlers.mjs OUTDIR
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { cases, combine, combined, wrap } from "./cases.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
mkdirSync(out, { recursive: true });
// The handlers are ES modules wherever they land.
writeFileSync(join(out, "package.json"), '{ "type": "module" }\n');
const source = (c) => readFileSync(join(here, "node_modules", c.bundle), "utf8");
for (const c of cases) {
  writeFileSync(join(out, `${c.name}.js`), wrap(c, source(c)));
  writeFileSync(join(out, `${c.name}.input.json`), JSON.stringify(c.input));
}
const parts = cases.filter((c) => combined.includes(c.name)).map((c) => ({ c, source: source(c) }));
writeFileSync(join(out, "combined.js"), combine(parts));
writeFileSync(join(out, "combined.input.json"), JSON.stringify(Object.fromEntries(parts.map(({ c }) => [c.name, c.input]))));
