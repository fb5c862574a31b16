/**
 * The invalidator's topic names, built here only. Debezium names a table's topic
 * `<topic.prefix>.<schema>.<table>` (infra/debezium: topic.prefix = KAFKA_TOPIC_PREFIX).
 */
export interface InvalidatorTopics {
  products: string;
  inventory: string;
  /** Undecodable events, with the reason (headers). */
  deadLetter: string;
  /** What the consumer group subscribes to (and whose lag is reported). */
  consumed: string[];
}

export function invalidatorTopics(prefix: string): InvalidatorTopics {
  const products = `${prefix}.public.products`;
  const inventory = `${prefix}.public.inventory`;
  return { products, inventory, deadLetter: `${prefix}.invalidator.dlq`, consumed: [products, inventory] };
}
