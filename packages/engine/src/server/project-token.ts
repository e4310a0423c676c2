import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";

/** Where a project keeps the web page's access token (beside its run store). */
export const TOKEN_FILE = join(".loraspec", "ui-token");

/** A token is 24 random bytes, base64url: what a stored one must look like to be used. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{32}$/;

/**
 * The project's access token for `loraspec ui`: the same across restarts, so open tabs keep
 * working; created on first use (owner-only, 0600), replaced when `rotate` is set (which logs
 * every open tab out). A file that is readable by others or malformed is replaced, not trusted.
 */
export async function projectToken(params: { projectDir: string; rotate?: boolean }): Promise<{ token: string; file: string; created: boolean }> {
  const file = join(params.projectDir, TOKEN_FILE);
  if (!params.rotate) {
    const existing = await readFile(file, "utf8").then((t) => t.trim(), () => undefined);
    const mode = await stat(file).then((s) => s.mode & 0o777, () => undefined);
    if (existing && TOKEN_SHAPE.test(existing) && (process.platform === "win32" || (mode !== undefined && (mode & 0o077) === 0))) {
      return { token: existing, file, created: false };
    }
  }
  const token = randomBytes(24).toString("base64url");
  try {
    await writePrivate(file, `${token}\n`);
  } catch (error) {
    throw new LoraspecError("E_USAGE", `Cannot write the access token to ${file}: ${(error as Error).message}`, {
      file,
      cause: error,
      hint: "The project folder must be writable by you; or pass a token explicitly.",
    });
  }
  return { token, file, created: true };
}

/** Atomic and owner-only from the first byte: the temp file is created 0600, synced, renamed over. */
async function writePrivate(file: string, text: string): Promise<void> {
  await mkdir(join(file, ".."), { recursive: true });
  const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  const handle = await open(tmp, "wx", 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
    await handle.chmod(0o600); // a umask cannot widen it, but an odd filesystem might
  } finally {
    await handle.close();
  }
  await rename(tmp, file).catch(async (error: unknown) => {
    await rm(tmp, { force: true });
    throw error;
  });
}
