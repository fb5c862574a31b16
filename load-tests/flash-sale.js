// k6 entry for the flash-sale scenario (defined in load-tests/scenarios.js).
import { bind } from "./k6-driver.js";

const s = bind("flash-sale");
export const options = s.options;
export const setup = s.setup;
export const handleSummary = s.handleSummary;
export const shopper = s.exec.shopper;
export const browser = s.exec.browser;
export const admin = s.exec.admin;
