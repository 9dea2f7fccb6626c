/**
 * Wait until `check` holds, polling every 25 ms; `false` when it never did within `timeoutMs`
 * (the caller's assertion then fails). For what the gateway finishes asynchronously: cleanup
 * after a disconnect, a log line, a counter, a background fill.
 */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}
