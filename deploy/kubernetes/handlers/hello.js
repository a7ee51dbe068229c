// A handler: the default export gets the parsed JSON input and returns a
// JSON-able value (or a promise of one).
export default function (ctx) {
  const name = ctx.name ?? "world";
  console.log(`greeting ${name}`);
  return { message: `Hello, ${name}!`, length: name.length };
}
