export default function (ctx) {
  console.log("hello", ctx.who, { a: 1 }, [1, 2]);
  console.info("number", 42);
  console.warn("careful");
  console.error("bad", null);
  console.debug("details");
  return "logged";
}
