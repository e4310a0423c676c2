export * from "./plan-validation.js";
export * from "./score-request.js";
export * from "./judge-validation.js";
export * from "./export-script.js";
export * from "./render-flags.js";
