// A last-good cache shared by every instance through the shared state backend, with this
// instance's own cache deciding while the backend is down or slow.
import { StaleAnswer, type LastGoodCache, type LastGoodStore, type SharedLastGoodBackend } from './last-good.js';
import { UNAVAILABLE, type SharedStateGuard } from './shared-policy-state.js';

/**
 * The last good results of one policy, shared by every instance (`lastGood.shared`): each success
 * is kept in this instance's {@link LastGoodCache} and sent to the backend as JSON (one call, not
 * awaited by the caller); a lookup asks the backend (bounded by its `maxWait`) and serves the younger
 * of its answer and the local one. A failed, slow or down backend only leaves the local cache to
 * answer: keeping and serving results never fails a call.
 * @publicApi
 */
export class SharedLastGoodCache implements LastGoodStore {
  constructor(
    private readonly key: string,
    private readonly local: LastGoodCache,
    private readonly backend: SharedLastGoodBackend,
    private readonly guard: SharedStateGuard,
  ) {}

  set(key: string, value: unknown): void {
    this.local.set(key, value);
    if (!this.guard.available) return;
    const json = jsonOf(value);
    if (json === undefined) return;
    void this.guard.call(this.key, () => this.backend.set(key, json));
  }

  mayHave(key: string): boolean {
    // another instance may have kept one: only the backend can tell, and only asynchronously
    return this.guard.available || this.local.mayHave(key);
  }

  lookup(key: string): StaleAnswer | undefined | Promise<StaleAnswer | undefined> {
    if (!this.guard.available) return this.local.get(key);
    return this.guard.call(this.key, () => this.backend.get(key)).then((found) => {
      const own = this.local.get(key);
      if (found === UNAVAILABLE || found === undefined) return own;
      if (own !== undefined && own.ageMs <= found.ageMs) return own;
      try {
        return new StaleAnswer(JSON.parse(found.json) as unknown, found.ageMs);
      } catch {
        return own;
      }
    });
  }
}

/** `value` as JSON, or `undefined` when JSON cannot represent it (undefined, a function, a BigInt, a cycle). */
function jsonOf(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}
