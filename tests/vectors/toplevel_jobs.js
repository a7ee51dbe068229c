// The top level queues jobs that fill in module state; they have run by
// the first call, as in Node.
let seed;
let chained = [];
Promise.resolve().then(() => {
  seed = 42;
});
Promise.resolve(1)
  .then((n) => chained.push(n))
  .then(() => chained.push(2));
export default () => ({ seed, chained });
