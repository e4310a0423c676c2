export function buildCli(options?: { quiet?: boolean }): Promise<void>;
