export default function (ctx) {
  return {
    input: ctx,
    maxSafe: Number.MAX_SAFE_INTEGER,
    pastSafe: 2 ** 53 + 1,
    sum: 0.1 + 0.2,
    tiny: 5e-324,
    huge: 1.7976931348623157e308,
    overflow: 1e308 * 10,
    notANumber: 0 / 0,
    negativeZero: -0,
    big: 1e21,
    small: 1e-7,
    third: 1 / 3,
    bigintAsString: (2n ** 64n).toString(),
  };
}
