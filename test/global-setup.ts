import { migrate } from "@flashsale/db";
import { TEST_ENV } from "@flashsale/testkit";

/** Integration and e2e suites run against a migrated database (idempotent). */
export default async function setup(): Promise<void> {
  await migrate(TEST_ENV.databaseUrl);
}
