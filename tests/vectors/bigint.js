export default function () {
  return { total: 10n ** 20n };
}
