// Runs every case under Nexus (`nexus run`) and under Node, compares the
// JSON byte for byte and prints a table. usage: node run.mjs NEXUS_BINARY
import { execFileSync } from "node:child_process";
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { cases } from "./cases.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const nexus = process.argv[2];
const work = mkdtempSync(join(tmpdir(), "nexus-compat-"));
const runner = join(here, "../node/run-handler.mjs");
execFileSync("node", [join(here, "make-handlers.mjs"), work]);
const all = [...cases.map((c) => ({ name: c.name, bundle: c.bundle })), { name: "combined", bundle: null }];

const time = (f) => {
  const start = process.hrtime.bigint();
  const out = f();
  return [out, Number(process.hrtime.bigint() - start) / 1e6];
};

let failed = 0;
console.log("| bundle | size | nexus run | node | same JSON |");
console.log("|---|---|---|---|---|");
for (const c of all) {
  const handler = join(work, `${c.name}.js`);
  const input = join(work, `${c.name}.input.json`);
  const opts = { encoding: "utf8", maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "pipe"] };
  let ours, theirs, msOurs, msNode;
  try {
    [ours, msOurs] = time(() =>
      execFileSync(nexus, ["run", handler, "--input-file", input, "--cache-dir", join(work, "cache")], opts));
  } catch (e) {
    ours = `FAILED: ${e.stderr}`;
  }
  try {
    [theirs, msNode] = time(() => execFileSync("node", [runner, handler, input], opts));
  } catch (e) {
    theirs = `NODE FAILED: ${e.stderr}`;
  }
  const same = ours === theirs;
  if (!same) {
    failed++;
    console.error(`${c.name}: differs\n nexus: ${ours.slice(0, 2000)}\n node:  ${theirs.slice(0, 2000)}`);
  }
  const kb = (statSync(handler).size / 1024).toFixed(0);
  console.log(`| ${c.bundle ?? "combined: lodash, marked, handlebars, esprima, acorn, js-yaml"} | ${kb} KiB | ${msOurs?.toFixed(0)} ms | ${msNode?.toFixed(0)} ms | ${same ? "yes" : "NO"} |`);
}
console.log(`\n${all.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
