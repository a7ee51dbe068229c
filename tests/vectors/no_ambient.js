export default function () {
  return {
    std: typeof std,
    os: typeof os,
    process: typeof process,
    require: typeof require,
    fetch: typeof fetch,
    XMLHttpRequest: typeof XMLHttpRequest,
    WebAssembly: typeof WebAssembly,
  };
}
