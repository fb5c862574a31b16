import { seed } from "./seed.ts";

const url = process.env.DATABASE_URL ?? "postgresql://flashsale:flashsale@127.0.0.1:5432/flashsale";
const inserted = await seed(url);
console.log(`[seed] ${inserted} products inserted (existing SEED-* rows kept)`);
