export default function (ctx) {
  return { greeting: `Hello, ${ctx.name}!` };
}
