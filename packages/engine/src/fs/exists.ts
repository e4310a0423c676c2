import { stat } from "node:fs/promises";

/** Whether something is at `path` (a file, folder or anything stat can see); false on any error. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
