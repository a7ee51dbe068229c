export default function () {
  const node = { name: "loop" };
  node.self = node;
  return node;
}
