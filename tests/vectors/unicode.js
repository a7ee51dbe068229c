export default function (ctx) {
  const text = ctx.text;
  return {
    echo: ctx,
    upper: text.toUpperCase(),
    codeUnits: text.length,
    codePoints: [...text].length,
    reversed: [...text].reverse().join(""),
    normalized: "e\u0301".normalize("NFC") === "\u00e9",
    deep: ctx.nested.a.b.c.map((x) => `${x}!`),
  };
}
