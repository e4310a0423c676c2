import { ApiError, createFalClient, type RequestMiddleware } from "@fal-ai/client";
import { LoraspecError } from "@loraspec/core/errors.js";
import { CAPTION_RETRY_POLICY, RETRYABLE_STATUSES, type RetryPolicy } from "./caption-policy.js";
import { CaptionHttpError, type Captioner, type CaptionRequest } from "./captioner.js";

/**
 * fal captioning endpoints we know the shapes of: what goes in, which output field holds the
 * caption. Florence-2 takes no prompt; any-llm/vision does.
 */
export const FAL_CAPTION_ENDPOINTS: Readonly<Record<string, { prompted: boolean; outputField: string; source: string }>> = {
  "fal-ai/florence-2-large/more-detailed-caption": {
    prompted: false,
    outputField: "results",
    source: "endpoint listed in fal-js libs/client/src/types/endpoints.ts; image_url in, results out as several public fal clients call it (schema itself not read here)",
  },
  "fal-ai/florence-2-large/detailed-caption": { prompted: false, outputField: "results", source: "same" },
  "fal-ai/florence-2-large/caption": { prompted: false, outputField: "results", source: "same" },
  "fal-ai/any-llm/vision": {
    prompted: true,
    outputField: "output",
    source: "NOT verified against the endpoint's schema: prompt, image_url, model -> output as third-party clients use it (one catalogue notes image_url vs image_urls); check GET https://api.fal.ai/v1/models?endpoint_id=fal-ai/any-llm/vision&expand=openapi-3.0",
  },
};

export const DEFAULT_FAL_CAPTION_ENDPOINT = "fal-ai/florence-2-large/more-detailed-caption";

export interface FalCaptionerConfig {
  endpoint?: string;
  /** Model name for prompted routers such as fal-ai/any-llm/vision. */
  model?: string;
  /** FAL_KEY (or id:secret); from the environment when omitted. Never logged. */
  credentials?: string;
  fetch?: typeof fetch;
  requestMiddleware?: RequestMiddleware;
  pollIntervalMs?: number;
  retry?: RetryPolicy;
}

/**
 * Captions through a fal.ai endpoint with @fal-ai/client's queue (`subscribe`: submit, poll,
 * fetch the result). The image goes inline as a data URI, so no storage upload is needed.
 */
export function createFalCaptioner(config: FalCaptionerConfig = {}): Captioner {
  const endpoint = config.endpoint ?? DEFAULT_FAL_CAPTION_ENDPOINT;
  const known = FAL_CAPTION_ENDPOINTS[endpoint];
  const retry = config.retry ?? CAPTION_RETRY_POLICY;
  const credentials = config.credentials ?? process.env.FAL_KEY ?? (process.env.FAL_KEY_ID && process.env.FAL_KEY_SECRET ? `${process.env.FAL_KEY_ID}:${process.env.FAL_KEY_SECRET}` : undefined);
  if (!credentials) {
    throw new LoraspecError("E_REMOTE_AUTH", "no fal.ai key", { hint: "set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET) in the environment" });
  }
  const client = createFalClient({
    credentials,
    // Only set what was given: an explicit undefined replaces the client's own defaults.
    ...(config.fetch ? { fetch: config.fetch } : {}),
    ...(config.requestMiddleware ? { requestMiddleware: config.requestMiddleware } : {}),
    suppressLocalCredentialsWarning: true,
    // The client's own retries, sized by our policy (our captionDataset retries on top of these).
    retry: { maxRetries: Math.min(2, retry.maxRetries), baseDelay: retry.initialDelayMs, maxDelay: retry.maxDelayMs, backoffMultiplier: retry.factor },
  });
  return {
    backend: "fal",
    async caption(request: CaptionRequest): Promise<string> {
      const imageUrl = `data:${request.mimeType};base64,${Buffer.from(request.image).toString("base64")}`;
      const input: Record<string, unknown> = { image_url: imageUrl };
      if (!known || known.prompted) input.prompt = request.prompt;
      if (config.model) input.model = config.model;
      let result: { data: unknown; requestId: string };
      try {
        result = await client.subscribe(endpoint, { input, pollInterval: config.pollIntervalMs ?? 500, abortSignal: request.signal });
      } catch (error) {
        if (request.signal?.aborted) throw new LoraspecError("E_CANCELLED", "captioning cancelled");
        if (error instanceof ApiError) {
          throw new CaptionHttpError({
            status: error.status,
            url: endpoint,
            requestId: error.requestId,
            message: `fal ${endpoint} answered ${error.status}: ${JSON.stringify(error.body).slice(0, 300)}`,
            retryable: RETRYABLE_STATUSES.has(error.status),
          });
        }
        throw new LoraspecError("E_REMOTE", `fal ${endpoint}: ${(error as Error).message}`, { retryable: true, cause: error });
      }
      const data = (result.data ?? {}) as Record<string, unknown>;
      const fields = known ? [known.outputField] : ["results", "output", "caption", "text"];
      const caption = fields.map((f) => data[f]).find((v): v is string => typeof v === "string" && v.trim() !== "");
      if (!caption) {
        throw new LoraspecError("E_REMOTE", `fal ${endpoint} returned no caption for ${request.name}`, {
          retryable: true,
          details: { requestId: result.requestId, fields: Object.keys(data) },
        });
      }
      return caption;
    },
  };
}
