/**
 * One error type for everything loraspec reports to a user: a stable code, a message that says
 * what to do, where it happened (file and field), and whether retrying can help.
 */
export const ERROR_CODES = {
  // Input the user gave us (exit 2: unusable input).
  E_USAGE: { exit: 2, http: 400, retryable: false },
  E_YAML_SYNTAX: { exit: 2, http: 400, retryable: false },
  E_CONTRACT_INVALID: { exit: 2, http: 422, retryable: false },
  E_CONTRACT_NOT_FOUND: { exit: 2, http: 404, retryable: false },
  E_UNKNOWN_BASE_MODEL: { exit: 2, http: 422, retryable: false },
  E_UNKNOWN_TRAINER: { exit: 2, http: 422, retryable: false },
  E_TRAINER_UNSUPPORTED: { exit: 2, http: 422, retryable: false },
  E_FILE_EXISTS: { exit: 2, http: 409, retryable: false },
  E_FILE_CHANGED: { exit: 2, http: 409, retryable: false },
  E_FILE_NOT_FOUND: { exit: 2, http: 404, retryable: false },
  // A small file loraspec parses (a contract, a caption, a model's config.json) far above any real one: refused unread.
  E_FILE_TOO_LARGE: { exit: 2, http: 422, retryable: false },
  E_PATH_OUTSIDE_PROJECT: { exit: 2, http: 403, retryable: false },
  E_DATASET_NOT_FOUND: { exit: 2, http: 404, retryable: false },
  E_DATASET_EMPTY: { exit: 2, http: 422, retryable: false },
  E_IMAGE_UNREADABLE: { exit: 2, http: 422, retryable: false },
  // .loraspec/dataset-pins.json (the keep/drop choices on duplicates) is not what loraspec writes.
  E_DATASET_PINS_INVALID: { exit: 2, http: 422, retryable: false },
  // LoRA files.
  E_SAFETENSORS_INVALID: { exit: 2, http: 422, retryable: false },
  E_LORA_FORMAT_UNKNOWN: { exit: 2, http: 422, retryable: false },
  E_LORA_UNUSED_KEYS: { exit: 1, http: 422, retryable: false },
  E_LORA_SHAPE_MISMATCH: { exit: 2, http: 422, retryable: false },
  // Runs and the worker.
  E_WORKER_NOT_INSTALLED: { exit: 3, http: 503, retryable: false },
  // The worker is installed, but without a package the contract's setting needs (adamw8bit: bitsandbytes, CUDA installs only).
  E_WORKER_PACKAGE_MISSING: { exit: 3, http: 503, retryable: false },
  E_WORKER_CRASHED: { exit: 3, http: 500, retryable: true },
  E_WORKER_PROTOCOL: { exit: 3, http: 500, retryable: false },
  E_TRAIN_DIVERGED: { exit: 4, http: 500, retryable: false },
  E_OUT_OF_MEMORY: { exit: 4, http: 507, retryable: true },
  E_TRAINER_FAILED: { exit: 4, http: 500, retryable: false },
  E_NO_OUTPUT: { exit: 4, http: 500, retryable: false },
  E_RUN_NOT_FOUND: { exit: 2, http: 404, retryable: false },
  E_RUN_STATE: { exit: 2, http: 409, retryable: false },
  // A checkpoint's state.pt holds something a loraspec checkpoint never holds (code a pickle could run): not loaded.
  E_CHECKPOINT_INVALID: { exit: 2, http: 422, retryable: false },
  E_CANCELLED: { exit: 130, http: 499, retryable: false },
  E_COST_LIMIT: { exit: 1, http: 402, retryable: false },
  // limits.max_cost_usd on a billed job with no price to hold it to: refused rather than skipped.
  E_COST_UNKNOWN: { exit: 1, http: 422, retryable: false },
  E_NOT_SUPPORTED: { exit: 2, http: 501, retryable: false },
  // The disk (or its quota) is full: free space, then resume; nothing was half-written.
  E_DISK_FULL: { exit: 4, http: 507, retryable: true },
  // Another I/O error of the machine (read-only file system, I/O error, too many open files).
  E_IO: { exit: 4, http: 500, retryable: true },
  // Remote services.
  E_REMOTE: { exit: 5, http: 502, retryable: true },
  E_REMOTE_AUTH: { exit: 5, http: 401, retryable: false },
  // A submit whose answer never came (or was not a success): the job may exist and bill.
  E_SUBMIT_UNKNOWN: { exit: 5, http: 502, retryable: false },
  E_TIMEOUT: { exit: 5, http: 504, retryable: true },
  // The local web server (loraspec ui).
  E_UNAUTHORIZED: { exit: 2, http: 401, retryable: false },
  E_FORBIDDEN: { exit: 2, http: 403, retryable: false },
  E_PAYLOAD_TOO_LARGE: { exit: 2, http: 413, retryable: false },
  E_UNSUPPORTED_MEDIA_TYPE: { exit: 2, http: 415, retryable: false },
  E_INTERNAL: { exit: 70, http: 500, retryable: false },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface LoraspecErrorOptions {
  /** The file the problem is in, as the user named it. */
  file?: string;
  /** The field or key path inside that file (`hyperparameters.lr`, `tensor "x.lora_up.weight"`). */
  field?: string;
  /** 1-based line in the file, when known. */
  line?: number;
  /** What to do about it. */
  hint?: string;
  /** Structured details for --json output (lists of keys, zod issues, ...). */
  details?: unknown;
  cause?: unknown;
  retryable?: boolean;
}

export class LoraspecError extends Error {
  override readonly name = "LoraspecError";
  readonly code: ErrorCode;
  readonly file?: string;
  readonly field?: string;
  readonly line?: number;
  readonly hint?: string;
  readonly details?: unknown;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: LoraspecErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.file = options.file;
    this.field = options.field;
    this.line = options.line;
    this.hint = options.hint;
    this.details = options.details;
    this.retryable = options.retryable ?? ERROR_CODES[code].retryable;
  }

  /** `file:line: field: message` the way compilers print it. */
  get where(): string {
    const parts: string[] = [];
    if (this.file) parts.push(this.line ? `${this.file}:${this.line}` : this.file);
    if (this.field) parts.push(this.field);
    return parts.join(": ");
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      file: this.file,
      field: this.field,
      line: this.line,
      hint: this.hint,
      retryable: this.retryable,
      details: this.details,
    };
  }
}

export function isLoraspecError(value: unknown): value is LoraspecError {
  return value instanceof LoraspecError;
}

export function exitCodeFor(error: unknown): number {
  return isLoraspecError(error) ? ERROR_CODES[error.code].exit : ERROR_CODES.E_INTERNAL.exit;
}

export function httpStatusFor(error: unknown): number {
  return isLoraspecError(error) ? ERROR_CODES[error.code].http : 500;
}

/**
 * Codes a worker reports that name a symptom, not a cause: an uncaught exception (E_INTERNAL), a
 * cancel. A trainer's output may say more (disk full, out of memory); the worker's launcher keeps
 * the same list (launch.py _SYMPTOMS, a test holds the two equal).
 */
export const SYMPTOM_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["E_INTERNAL", "E_CANCELLED"]);

/** A code a worker reported, when it is one of core's (any other string is not trusted). */
export function workerErrorCode(code: unknown): ErrorCode | undefined {
  return typeof code === "string" && Object.hasOwn(ERROR_CODES, code) ? (code as ErrorCode) : undefined;
}
