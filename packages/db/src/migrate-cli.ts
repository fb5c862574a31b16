import { migrate } from "./migrate.ts";

const url = process.env.DATABASE_URL ?? "postgresql://flashsale:flashsale@127.0.0.1:5432/flashsale";
const result = await migrate(url, undefined, (m) => console.log(`[migrate] ${m}`));
console.log(
  `[migrate] ${result.applied.length} applied, ${result.alreadyApplied.length} already up to date (${new URL(url).pathname.slice(1)})`,
);
