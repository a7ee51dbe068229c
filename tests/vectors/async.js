const double = async (n) => {
  await null;
  return n * 2;
};

async function* countdown(n) {
  while (n > 0) yield n--;
}

export default async function (ctx) {
  const doubled = await Promise.all(ctx.values.map(double));
  const seen = [];
  for await (const n of countdown(3)) seen.push(n);
  const settled = await Promise.allSettled([Promise.resolve(1), Promise.reject(new Error("no"))]);
  return { doubled, seen, settled: settled.map((s) => s.status) };
}
