# shellcheck shell=bash
# Sourced by scripts/test and scripts/fuzz: points everything at the test stack (test/stack.env),
# which shares the native processes with scripts/up but none of its data, then prepares it
# (migrated database, its own Debezium connector). The infrastructure must be up.
set -a
# shellcheck source=/dev/null
source "$ROOT/test/stack.env"
set +a
export DATABASE_URL="$TEST_DATABASE_URL" REDIS_URL="$TEST_REDIS_URL" KAFKA_BROKERS="$TEST_KAFKA_BROKERS"
export KAFKA_TOPIC_PREFIX="$TEST_KAFKA_TOPIC_PREFIX" KAFKA_GROUP_ID="$TEST_KAFKA_GROUP_ID"
export SVC_INSTANCE=test

test_stack_prepare() {
  echo "[test-stack] migrating ${TEST_DATABASE_URL##*/} (scripts/up's database is not touched)"
  # Chained: this also runs where `set -e` does not apply (inside scripts/test's step).
  (cd "$ROOT" && pnpm --silent db:migrate) &&
  FLASHSALE_CONNECTOR_NAME="$TEST_CONNECTOR_NAME" FLASHSALE_CDC_DB="$TEST_CDC_DB" \
    FLASHSALE_CDC_SLOT="$TEST_CDC_SLOT" FLASHSALE_CDC_TOPIC_PREFIX="$TEST_KAFKA_TOPIC_PREFIX" \
    "$ROOT/infra/native/ensure-cdc"
}
