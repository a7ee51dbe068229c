export default async function (ctx) {
  await Promise.resolve();
  return Promise.reject(new RangeError(`limit ${ctx.limit} exceeded`));
}
