/**
 * Bearer tokens for the lean Azure read path (`azure-read.ts`), from the store's TokenCredential
 * (DefaultAzureCredential in production). The credential's own cache (MSAL's) is not free to ask
 * on every read, so the token is kept here until shortly before it expires, and callers that
 * arrive while it is being refreshed share that one refresh.
 */
import type { DefaultAzureCredential } from '@azure/identity';

/** What the store needs from a credential (Azure's TokenCredential). */
export type TokenCredential = Pick<DefaultAzureCredential, 'getToken'>;

/** https://learn.microsoft.com/rest/api/storageservices/authorize-with-azure-active-directory */
export const AZURE_STORAGE_SCOPE = 'https://storage.azure.com/.default';
/** Refresh this long before expiry (the SDK's bearer policy uses the same window). */
export const TOKEN_REFRESH_WINDOW_MS = 2 * 60_000;
/** Inside this much of expiry a token is not sent at all; callers wait for the refresh. */
const TOKEN_MIN_VALIDITY_MS = 30_000;

interface CachedToken {
  token: string;
  expiresOnTimestamp: number;
  /** When the credential suggests refreshing (newer credentials say so). */
  refreshAfterTimestamp?: number | undefined;
}

/** One credential's token for one scope, cached; one refresh at a time. */
export class BearerTokenCache {
  readonly #credential: TokenCredential;
  readonly #scope: string;
  readonly #now: () => number;
  #token: CachedToken | undefined;
  #refreshing: Promise<CachedToken> | undefined;

  constructor(credential: TokenCredential, scope = AZURE_STORAGE_SCOPE, now: () => number = Date.now) {
    this.#credential = credential;
    this.#scope = scope;
    this.#now = now;
  }

  /** A token to send now. */
  async get(): Promise<string> {
    const t = this.#token;
    const now = this.#now();
    if (t && now < Math.min(t.refreshAfterTimestamp ?? Infinity, t.expiresOnTimestamp - TOKEN_REFRESH_WINDOW_MS)) return t.token;
    const refresh = (this.#refreshing ??= this.#refresh());
    if (t && now < t.expiresOnTimestamp - TOKEN_MIN_VALIDITY_MS) {
      // Still good for a while: send it and let the refresh finish behind this read. A failed
      // refresh is retried by the next read, and surfaces once the token is too old to send.
      refresh.catch(() => {});
      return t.token;
    }
    return (await refresh).token;
  }

  async #refresh(): Promise<CachedToken> {
    try {
      // No abort signal: the refresh is shared, and one caller's deadline must not fail the
      // others. The caller's own deadline still bounds its wait (core/deadline.ts).
      const got = await this.#credential.getToken(this.#scope);
      if (!got) throw new Error('the token credential returned no token');
      this.#token = { token: got.token, expiresOnTimestamp: got.expiresOnTimestamp, refreshAfterTimestamp: got.refreshAfterTimestamp };
      return this.#token;
    } finally {
      this.#refreshing = undefined;
    }
  }
}
