import type { PriceImportRow } from "@flashsale/db";
import { HttpError } from "@flashsale/http";
import { parse } from "csv-parse/sync";

export const MAX_IMPORT_ROWS = 100_000;
const MAX_PRICE_CENTS = 100_000_000;
const SKU = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Parses a price import: CSV with a header row containing `sku,listPriceCents`
 * (other columns ignored) or JSON lines `{"sku":..,"listPriceCents":..}`.
 * Any bad row rejects the whole file with its line number: nothing half-imported.
 */
export function parsePriceImport(body: string, contentType: string): PriceImportRow[] {
  // Media types are case-insensitive (RFC 9110): TEXT/CSV is CSV.
  const records = contentType.toLowerCase().startsWith("text/csv") ? parseCsv(body) : parseJsonLines(body);
  if (records.length === 0) throw new HttpError(400, "INVALID_IMPORT", "import contains no rows");
  if (records.length > MAX_IMPORT_ROWS) {
    throw new HttpError(413, "IMPORT_TOO_LARGE", `at most ${MAX_IMPORT_ROWS} rows per import`);
  }
  const seen = new Set<string>();
  return records.map(({ line, record }) => {
    const sku = record.sku;
    const price = record.listPriceCents;
    if (typeof sku !== "string" || !SKU.test(sku)) {
      throw new HttpError(400, "INVALID_IMPORT", `line ${line}: sku must match ${SKU.source}`, { line });
    }
    if (typeof price !== "number" || !Number.isInteger(price) || price < 0 || price > MAX_PRICE_CENTS) {
      throw new HttpError(400, "INVALID_IMPORT", `line ${line}: listPriceCents must be an integer in [0, ${MAX_PRICE_CENTS}]`, { line });
    }
    if (seen.has(sku)) throw new HttpError(400, "DUPLICATE_SKU", `line ${line}: sku ${sku} appears twice`, { line });
    seen.add(sku);
    return { sku, listPriceCents: price };
  });
}

/**
 * A CSV cell is text: only plain decimal digits are a price. Number() would turn an empty cell
 * into 0 (a forgotten price made the product free) and accept "0x10" or "1e3". A JSON line
 * carries a number, never a string (no coercion, as for every other body).
 */
function csvPrice(cell: unknown): unknown {
  return typeof cell === "string" && /^[0-9]{1,10}$/.test(cell) ? Number(cell) : cell;
}

interface NumberedRecord {
  line: number;
  record: Record<string, unknown>;
}

function parseCsv(body: string): NumberedRecord[] {
  let rows: Record<string, string>[];
  try {
    rows = parse(body, { columns: true, skip_empty_lines: true, trim: true });
  } catch (err) {
    throw new HttpError(400, "INVALID_IMPORT", `CSV: ${(err as Error).message}`);
  }
  // Header is line 1, so data row i is line i + 2.
  return rows.map((record, i) => ({ line: i + 2, record: { ...record, listPriceCents: csvPrice(record.listPriceCents) } }));
}

function parseJsonLines(body: string): NumberedRecord[] {
  const out: NumberedRecord[] = [];
  body.split("\n").forEach((text, i) => {
    if (text.trim() === "") return;
    try {
      const record = JSON.parse(text) as unknown;
      if (typeof record !== "object" || record === null || Array.isArray(record)) throw new Error("not an object");
      out.push({ line: i + 1, record: record as Record<string, unknown> });
    } catch (err) {
      throw new HttpError(400, "INVALID_IMPORT", `line ${i + 1}: ${(err as Error).message}`, { line: i + 1 });
    }
  });
  return out;
}
