// Preloaded into a child gateway by memory tests (NODE_OPTIONS="--expose-gc --import ..."):
// SIGUSR2 runs a full garbage collection, so RSS can be read without waiting on V8's timing.
globalThis.process.on('SIGUSR2', () => {
  globalThis.gc?.();
  globalThis.gc?.();
});
