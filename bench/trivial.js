// The trivial handler both sides of the invocation benchmark run.
export default function (ctx) {
  const name = ctx.name ?? "world";
  return { message: `Hello, ${name}!`, length: name.length };
}
