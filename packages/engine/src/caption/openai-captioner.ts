import { LoraspecError } from "@loraspec/core/errors.js";
import { CAPTION_REQUEST_TIMEOUT_MS, RETRYABLE_STATUSES } from "./caption-policy.js";
import { CaptionHttpError, type Captioner, type CaptionRequest } from "./captioner.js";

export interface OpenAICaptionerConfig {
  /** Base URL including /v1, e.g. http://127.0.0.1:11434/v1 (Ollama), https://api.openai.com/v1. */
  baseUrl: string;
  model: string;
  /** Bearer token; omitted for local servers that need none. */
  apiKey?: string;
  maxTokens?: number;
  temperature?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/**
 * Any OpenAI-compatible chat endpoint with image input (OpenAI, vLLM, Ollama, LM Studio, ...):
 * POST {baseUrl}/chat/completions with a user message of [text, image_url(data URL)] parts,
 * caption = choices[0].message.content.
 */
export function createOpenAICaptioner(config: OpenAICaptionerConfig): Captioner {
  const doFetch = config.fetch ?? fetch;
  const url = `${config.baseUrl.replace(/\/+$/, "")}/chat/completions`;
  return {
    backend: "openai",
    async caption(request: CaptionRequest): Promise<string> {
      const timeout = AbortSignal.timeout(config.timeoutMs ?? CAPTION_REQUEST_TIMEOUT_MS);
      const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
      const body = {
        model: config.model,
        max_tokens: config.maxTokens ?? 200,
        temperature: config.temperature ?? 0.2,
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: request.prompt },
              { type: "image_url", image_url: { url: `data:${request.mimeType};base64,${Buffer.from(request.image).toString("base64")}` } },
            ],
          },
        ],
      };
      let response: Response;
      try {
        response = await doFetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", ...(config.apiKey ? { authorization: `Bearer ${config.apiKey}` } : {}) },
          body: JSON.stringify(body),
          signal,
        });
      } catch (error) {
        if (request.signal?.aborted) throw new LoraspecError("E_CANCELLED", "captioning cancelled");
        const timedOut = timeout.aborted;
        throw new LoraspecError(timedOut ? "E_TIMEOUT" : "E_REMOTE", `${timedOut ? "timed out" : "request failed"}: ${url}: ${(error as Error).message}`, {
          retryable: true,
          cause: error,
        });
      }
      const text = await response.text();
      if (!response.ok) {
        throw new CaptionHttpError({
          status: response.status,
          url,
          requestId: response.headers.get("x-request-id") ?? undefined,
          message: `${url} answered ${response.status}: ${text.slice(0, 300)}`,
          retryable: RETRYABLE_STATUSES.has(response.status),
        });
      }
      let json: { choices?: Array<{ message?: { content?: unknown } }> };
      try {
        json = JSON.parse(text);
      } catch {
        throw new LoraspecError("E_REMOTE", `${url} answered with something that is not JSON: ${text.slice(0, 200)}`, { retryable: true });
      }
      const content = json.choices?.[0]?.message?.content;
      // Some servers return content as an array of parts.
      const caption = typeof content === "string" ? content : Array.isArray(content) ? content.map((p) => (p as { text?: string }).text ?? "").join("") : undefined;
      if (!caption || !caption.trim()) {
        throw new LoraspecError("E_REMOTE", `${url} returned no caption for ${request.name}`, { retryable: true, details: { response: text.slice(0, 500) } });
      }
      return caption;
    },
  };
}
