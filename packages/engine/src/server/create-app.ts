import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { LoraspecError, httpStatusFor, isLoraspecError } from "@loraspec/core/errors.js";
import { createAppContext, type CreateAppParams } from "./app-context.js";
import { requireToken } from "./auth.js";
import { codedError, refuseNonJsonWrite, tooLarge } from "./http-helpers.js";
import { SERVER_LIMITS } from "./limits.js";
import { datasetRoutes } from "./routes/dataset-routes.js";
import { fileRoutes, webPageRoutes } from "./routes/file-routes.js";
import { loraRoutes } from "./routes/lora-routes.js";
import { projectRoutes } from "./routes/project-routes.js";
import { runsRoutes } from "./routes/runs-routes.js";

export type { CreateAppParams } from "./app-context.js";

/** Shown to a person who opens the page without the token: how to get in, in words. */
const NEEDS_TOKEN_HTML =
  '<!doctype html><meta charset="utf-8"><title>loraspec</title><body style="font:14px system-ui;margin:40px;max-width:640px">' +
  "<h1>loraspec</h1><p>This page needs the access token. Open the URL that <code>loraspec ui</code> printed (it ends in <code>?token=...</code>).</p>";

/**
 * The HTTP API behind `loraspec ui`: web-standard Request/Response (hono), one error handler
 * mapping LoraspecError codes to statuses, SSE for live runs, one route module per area. No
 * endpoint takes a command, a URL to fetch or a path outside the project.
 */
export function createApp(params: CreateAppParams) {
  const ctx = createAppContext(params);
  const app = new Hono();

  app.onError((error, c) => {
    // A malformed percent-escape anywhere (hono's own decoding included) is the client's mistake.
    const coded = isLoraspecError(error)
      ? error
      : error instanceof URIError
        ? new LoraspecError("E_USAGE", error.message)
        : codedError(error, ctx.projectDir);
    const status = httpStatusFor(coded);
    if (status === 401 && !c.req.path.startsWith("/api/") && (c.req.header("accept") ?? "").includes("text/html")) {
      return c.html(NEEDS_TOKEN_HTML, 401);
    }
    if (coded.code === "E_INTERNAL") console.error(error); // the stack goes to the terminal, never to the page
    return c.json({ error: coded.toJSON() }, status as 500);
  });
  app.notFound((c) => c.json({ error: { code: "E_FILE_NOT_FOUND", message: `No route for ${c.req.method} ${c.req.path}` } }, 404));

  app.use("*", requireToken({ token: params.token, allowedHosts: params.allowedHosts, filesKey: ctx.filesKey }));
  app.use("*", async (c, next) => {
    await next();
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    c.header("X-Frame-Options", "SAMEORIGIN");
  });
  app.use("/api/*", async (c, next) => {
    if (c.req.path === "/api/dataset/upload") return next();
    refuseNonJsonWrite(c);
    return bodyLimit({ maxSize: SERVER_LIMITS.jsonBytes, onError: tooLarge(SERVER_LIMITS.jsonBytes) })(c, next);
  });

  const routed = app
    .route("/api", projectRoutes(ctx))
    .route("/api", datasetRoutes(ctx))
    .route("/api/runs", runsRoutes(ctx))
    .route("/api/lora", loraRoutes(ctx))
    .route("/", fileRoutes(ctx));
  if (params.webDist) routed.route("/", webPageRoutes(params.webDist));
  return routed;
}

/** The API's type, for hono's typed client (`hc<AppType>`). */
export type AppType = ReturnType<typeof createApp>;
