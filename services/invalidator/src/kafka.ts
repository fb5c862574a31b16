import type { Logger } from "@flashsale/telemetry";
import { Kafka, logLevel } from "kafkajs";

/** A kafkajs client with bounded timeouts whose logs go to our pino logger. */
export function createKafka(brokers: string[], clientId: string, logger: Logger): Kafka {
  return new Kafka({
    clientId,
    brokers,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log }) => {
        const { message, ...extra } = log;
        if (level <= logLevel.ERROR) logger.error(extra, message);
        else if (level === logLevel.WARN) logger.warn(extra, message);
        else logger.debug(extra, message);
      },
  });
}
