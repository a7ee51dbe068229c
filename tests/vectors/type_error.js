function check(value) {
  if (typeof value !== "string") {
    throw new TypeError(`expected a string, got ${typeof value}`);
  }
  return value;
}

export default function (ctx) {
  return check(ctx.value);
}
