export function buildCli(options?: { quiet?: boolean }): Promise<void>;
export function bundleCli(options: { outdir: string; quiet?: boolean; sourcemap?: boolean }): Promise<void>;
