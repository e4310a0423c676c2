import * as operands from "../fs/file-operands.js";

/**
 * The file operands of inspect, convert and merge (inputs and -o): fs/file-operands.ts's checks, named
 * as LoRA files ("is a folder, not a .safetensors file"; hint "Name a .safetensors file.").
 */
const NOUN = ".safetensors file";

export const fsError = (error: unknown, path: string, field?: string) => operands.fsError(error, path, field, NOUN);
export const checkInputFile = (path: string, field: string) => operands.checkInputFile(path, field, NOUN);
export const checkOutputFile = (path: string, field = "--output") => operands.checkOutputFile(path, field, NOUN);
