// k6 entry for the checkout-rush scenario (defined in load-tests/scenarios.js).
import { bind } from "./k6-driver.js";

const s = bind("checkout-rush");
export const options = s.options;
export const setup = s.setup;
export const handleSummary = s.handleSummary;
export const buyer = s.exec.buyer;
