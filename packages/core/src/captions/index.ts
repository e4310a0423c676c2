export * from "./caption-rules.js";
export * from "./caption-prompts.js";
