import { LoraspecError } from "@loraspec/core/errors.js";

/** One image in, one raw caption out; `finalizeCaption` (core) places the trigger afterwards. */
export interface CaptionRequest {
  /** Image bytes (a JPEG the caller made small enough to send). */
  image: Uint8Array;
  mimeType: string;
  /** The instruction for prompted models (ignored by prompt-less ones like Florence-2). */
  prompt: string;
  /** Name for error messages. */
  name: string;
  signal?: AbortSignal;
}

export interface Captioner {
  readonly backend: "openai" | "fal" | "worker";
  caption(request: CaptionRequest): Promise<string>;
  /**
   * Whole-list captioning for backends that load a model once (the local worker). When present,
   * captionDataset calls this instead of `caption`, once per batch.
   */
  captionMany?(params: { images: Array<{ path: string; name: string }>; prompt: string; signal?: AbortSignal; onProgress?: (done: number) => void }): Promise<Map<string, string | Error>>;
  close?(): Promise<void>;
}

/** An HTTP failure from a captioning endpoint, carrying the status (and request id when known). */
export class CaptionHttpError extends LoraspecError {
  readonly status: number;
  readonly requestId?: string;
  constructor(params: { status: number; message: string; url: string; requestId?: string; retryable: boolean }) {
    super(params.status === 401 || params.status === 403 ? "E_REMOTE_AUTH" : "E_REMOTE", params.message, {
      details: { status: params.status, url: params.url, requestId: params.requestId },
      retryable: params.retryable,
      hint: params.status === 401 || params.status === 403 ? "check the API key in the environment" : undefined,
    });
    this.status = params.status;
    this.requestId = params.requestId;
  }
}
