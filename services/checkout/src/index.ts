/** What other workspaces (the end-to-end tests, bench/) may use of checkout; main.ts is the process. */
export { type BuildCheckoutOptions, buildCheckoutApp } from "./app.ts";
export { type CheckoutFlowDeps, checkout } from "./checkout-flow.ts";
