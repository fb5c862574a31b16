import { describe, expect, it } from "vitest";
import { type L1Entry, L1Store } from "./l1.ts";

const entry = (version: number, hardExpiry: number | null = null): L1Entry<string> => ({
  value: `v${version}`,
  version,
  storedAt: 0,
  hardExpiry,
});

describe("L1Store", () => {
  it("is unusable until enabled, and disabling flushes it", () => {
    const l1 = new L1Store<string>({ maxEntries: 10 });
    expect(l1.store("k", entry(1), 1000, l1.readToken())).toBe(false);
    l1.setEnabled(true);
    expect(l1.store("k", entry(1), 1000, l1.readToken())).toBe(true);
    expect(l1.get("k", 0)?.value).toBe("v1");
    l1.setEnabled(false);
    l1.setEnabled(true);
    expect(l1.get("k", 0)).toBeUndefined();
  });

  it("drops a store whose Redis read began before an invalidation of that key (tracking race)", () => {
    const l1 = new L1Store<string>({ maxEntries: 10 });
    l1.setEnabled(true);
    const token = l1.readToken(); // read of Redis starts, returns the old value...
    l1.invalidate("k"); // ...while the invalidation message is applied first
    expect(l1.store("k", entry(1), 1000, token)).toBe(false);
    expect(l1.store("other", entry(1), 1000, token)).toBe(true);
    expect(l1.store("k", entry(2), 1000, l1.readToken())).toBe(true);
  });

  it("drops a store whose read began while the channel was down, after it comes back", () => {
    const l1 = new L1Store<string>({ maxEntries: 10 });
    l1.setEnabled(true);
    l1.setEnabled(false); // channel lost
    const token = l1.readToken(); // a read starts during the gap
    l1.setEnabled(true); // channel back
    expect(l1.store("k", entry(1), 1000, token)).toBe(false);
    expect(l1.store("k", entry(1), 1000, l1.readToken())).toBe(true);
  });

  it("drops every store older than a flush (reconnect)", () => {
    const l1 = new L1Store<string>({ maxEntries: 10 });
    l1.setEnabled(true);
    const token = l1.readToken();
    l1.clear();
    expect(l1.store("k", entry(1), 1000, token)).toBe(false);
  });

  it("stays safe when it forgets old invalidations (bounded history)", () => {
    const l1 = new L1Store<string>({ maxEntries: 1 }); // history keeps 1024 keys
    l1.setEnabled(true);
    const token = l1.readToken();
    for (let i = 0; i < 2000; i++) l1.invalidate(`k${i}`);
    // k0's invalidation was forgotten, so a read older than it must not store.
    expect(l1.store("k0", entry(1), 1000, token)).toBe(false);
  });

  it("never returns an entry at or past its hard expiry (validUntil)", () => {
    const l1 = new L1Store<string>({ maxEntries: 10 });
    l1.setEnabled(true);
    l1.store("k", entry(1, 5_000), 60_000, l1.readToken());
    expect(l1.get("k", 4_999)?.value).toBe("v1");
    expect(l1.get("k", 5_000)).toBeUndefined();
  });
});
