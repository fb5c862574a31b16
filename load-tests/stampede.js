// k6 entry for the stampede scenario (defined in load-tests/scenarios.js).
import { bind } from "./k6-driver.js";

const s = bind("stampede");
export const options = s.options;
export const setup = s.setup;
export const handleSummary = s.handleSummary;
export const reader = s.exec.reader;
export const writer = s.exec.writer;
