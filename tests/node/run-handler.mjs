// Runs a Nexus handler under Node the way Nexus does: import the module,
// call its default export with the parsed input, await, print JSON.
// usage: node run-handler.mjs HANDLER.js INPUT.json
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

// Nexus sends console output to the host's log, not to the result: keep
// stdout for the result alone.
for (const method of ["log", "info", "debug"]) console[method] = console.error;

const [handlerPath, inputPath] = process.argv.slice(2);
const input = JSON.parse(readFileSync(inputPath, "utf8"));
const mod = await import(pathToFileURL(resolve(handlerPath)).href);
const result = await mod.default(input);
const json = JSON.stringify(result);
process.stdout.write((json === undefined ? "null" : json) + "\n");
