export default { not: "a function" };
