export const handler = (ctx) => ctx;
