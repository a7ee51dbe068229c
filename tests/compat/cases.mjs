// Real-world single-file npm bundles wrapped as Nexus handlers. Each case
// names its bundle (a UMD/CommonJS file from node_modules), the global it
// binds, the handler body and an input. `wrap` turns a case into an ES
// module that runs unchanged under Nexus and under Node.
export const cases = [
  {
    name: "lodash",
    bundle: "lodash/lodash.js",
    body: `(ctx) => ({
      chunks: lib.chunk(ctx.items, 2),
      grouped: lib.groupBy(ctx.words, "length"),
      camel: ctx.words.map(lib.camelCase),
      sorted: lib.sortBy(ctx.people, ["age", "name"]),
      merged: lib.merge({ a: { b: 1 } }, { a: { c: 2 } }),
      template: lib.template("hello <%= user %>!")({ user: "nexus" }),
    })`,
    input: {
      items: [1, 2, 3, 4, 5],
      words: ["foo bar", "Hello-World", "été à Paris", "x"],
      people: [{ name: "b", age: 30 }, { name: "a", age: 30 }, { name: "c", age: 7 }],
    },
  },
  {
    name: "marked",
    bundle: "marked/lib/marked.umd.js",
    body: `(ctx) => ({ html: lib.marked.parse(ctx.markdown), tokens: lib.marked.lexer(ctx.markdown).length })`,
    input: {
      markdown: "# Nexus\n\nRuns **handlers** in _fresh_ instances.\n\n- one\n- two\n\n```js\nexport default (x) => x;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    },
  },
  {
    name: "mathjs",
    bundle: "mathjs/lib/browser/math.js",
    body: `(ctx) => ({
      det: lib.det(ctx.matrix),
      inverse: lib.inv(ctx.matrix),
      evaluated: lib.evaluate(ctx.expression).toString(),
      fraction: lib.format(lib.fraction(1, 3).add(lib.fraction(1, 6))),
      units: lib.evaluate("12.7 cm to inch").toString(),
      derivative: lib.derivative("x^3 + 2x", "x").toString(),
    })`,
    input: { matrix: [[4, 7], [2, 6]], expression: "sqrt(3^2 + 4^2) * sin(pi / 6)" },
  },
  {
    name: "handlebars",
    bundle: "handlebars/dist/handlebars.js",
    body: `(ctx) => ({ html: lib.compile(ctx.template)(ctx.data) })`,
    input: {
      template: "<ul>{{#each people}}<li>{{name}} ({{age}})</li>{{/each}}</ul>{{{raw}}}",
      data: { people: [{ name: "Ada", age: 36 }, { name: "<b>Bo</b>", age: 7 }], raw: "<i>x</i>" },
    },
  },
  {
    name: "esprima",
    bundle: "esprima/dist/esprima.js",
    body: `(ctx) => lib.parseScript(ctx.code, { loc: true })`,
    input: { code: "function add(a, b) { return a + b; }\nvar total = [1, 2, 3].reduce(add, 0);" },
  },
  {
    name: "acorn",
    bundle: "acorn/dist/acorn.js",
    body: `(ctx) => lib.parse(ctx.code, { ecmaVersion: 2022, sourceType: "module" })`,
    input: { code: "export async function* f(x, ...rest) { for await (const y of x) yield* rest; }\nclass A { #p = 1; static s = 2; }" },
  },
  {
    name: "js-yaml",
    bundle: "js-yaml/dist/js-yaml.js",
    body: `(ctx) => ({ parsed: lib.load(ctx.yaml), dumped: lib.dump(ctx.object) })`,
    input: {
      yaml: "name: nexus\nlimits: { timeout_ms: 1000, memory: 64Mi }\nhandlers:\n  - hello\n  - name: \"quoted: yes\"\n    on: [push, pull]\nanchor: &a { x: 1 }\nref: *a\n",
      object: { a: [1, "two", { three: null }], "multi\nline": "text\nmore", n: 1.5e-7 },
    },
  },
  {
    name: "typescript",
    bundle: "typescript/lib/typescript.js",
    body: `(ctx) => {
      const out = lib.transpileModule(ctx.code, {
        compilerOptions: { target: lib.ScriptTarget.ES2017, module: lib.ModuleKind.ESNext },
        reportDiagnostics: true,
      });
      return { js: out.outputText, diagnostics: out.diagnostics.length, version: lib.version };
    }`,
    input: {
      code: "enum Color { Red, Green }\ninterface P { x: number }\nexport const f = async (p: P): Promise<number> => p.x * 2;\nexport class A<T> { constructor(private readonly v: T) {} get(): T { return this.v; } }\n",
    },
  },
];

// The bundle's CommonJS exports, as an expression.
function load(source) {
  return `(() => {
const module = { exports: {} };
(function (module, exports) {
${source}
}).call(globalThis, module, module.exports);
return module.exports;
})()`;
}

export function wrap(c, source) {
  return `const lib = ${load(source)};\nexport default ${c.body};\n`;
}

// One handler holding several bundles: each case's body gets its own part
// of the input. With the bundles in `combined` it is ~1.4 MB. (mathjs is
// left out: evaluating it takes ~0.5 s per fresh instance, which would
// measure QuickJS, not the cache.)
export function combine(parts) {
  const libs = parts.map(({ c, source }) => `  ${JSON.stringify(c.name)}: ((lib) => ${c.body})(${load(source)}),`);
  return `const handlers = {\n${libs.join("\n")}\n};
export default (ctx) => Object.fromEntries(Object.entries(handlers).map(([name, h]) => [name, h(ctx[name])]));
`;
}

export const combined = ["lodash", "marked", "handlebars", "esprima", "acorn", "js-yaml"];
