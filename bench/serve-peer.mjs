// The Node peers for `just bench-serve`: an `http` server on two cluster
// workers that runs a handler per request, either
//   vm:     in a fresh `vm` context (isolated, like Nexus), or
//   direct: by calling it (no isolation at all).
// The handler is compiled once per worker either way.
// usage: node bench/serve-peer.mjs vm|direct PORT HANDLER.js
import cluster from "node:cluster";
import http from "node:http";
import vm from "node:vm";
import { readFileSync } from "node:fs";

const [mode, port, file] = process.argv.slice(2);
if (cluster.isPrimary) {
  for (let i = 0; i < 2; i++) cluster.fork();
} else {
  // `vm.Script` runs scripts: the module's default export becomes a global.
  const source = readFileSync(file, "utf8").replace("export default ", "globalThis.handler = ");
  const script = new vm.Script(source);
  let direct;
  if (mode === "direct") {
    const context = vm.createContext({});
    script.runInContext(context);
    direct = context.handler;
  }
  const invoke = (input) => {
    if (direct) return JSON.stringify(direct(input));
    const context = vm.createContext({});
    script.runInContext(context);
    return JSON.stringify(context.handler(input));
  };
  http
    .createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        try {
          const body = invoke(JSON.parse(Buffer.concat(chunks).toString() || "{}"));
          res.writeHead(200, { "content-type": "application/json" }).end(body);
        } catch (e) {
          res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error: String(e) }));
        }
      });
    })
    .listen(Number(port), "127.0.0.1");
}
