export default function (ctx) {
  return ctx;
}
