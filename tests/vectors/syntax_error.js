export default function (ctx) {
  const x = 1;
  return x +;
}
