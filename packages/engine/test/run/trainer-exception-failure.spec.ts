import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { superviseProcess, type ProcessOutcome } from "@loraspec/engine/run/supervise-process.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

// sd-scripts' own traceback, then 40 lines of shutdown noise and accelerate's wrapper traceback:
// the cause is further back than the supervisor's last 30 lines.
const STDERR = [
  "Traceback (most recent call last):",
  '  File "/sd-scripts/library/train_util.py", line 5296, in wrap_check_needless_num_warmup_steps',
  '    raise ValueError(f"{name} does not require `num_warmup_steps`. Set None or 0.")',
  "ValueError: constant does not require `num_warmup_steps`. Set None or 0.",
  ...Array.from({ length: 40 }, (_, i) => `[rank0]: shutdown noise ${i}`),
  "Traceback (most recent call last):",
  '  File "/venv/lib/python3.10/site-packages/accelerate/commands/launch.py", line 785, in simple_launcher',
  "    raise subprocess.CalledProcessError(returncode=process.returncode, cmd=cmd)",
  "subprocess.CalledProcessError: Command '['python', 'sdxl_train_network.py']' returned non-zero exit status 1.",
].join("\n");

it("E_TRAINER_FAILED carries the trainer's own exception and the stderr log path, not accelerate's wrapper", async () => {
  const dir = mkdtempSync(join(tmpdir(), "loraspec-exc-"));
  dirs.push(dir);
  const runDir = join(dir, "run");
  const gen = superviseProcess({
    command: process.execPath,
    args: ["-e", `process.stderr.write(${JSON.stringify(STDERR)} + "\\n"); process.exit(1);`],
    cwd: dir,
    runDir,
    parseLine: () => [],
    pollMs: 20,
  });
  let next = await gen.next();
  while (!next.done) next = await gen.next();
  const failure = (next.value as ProcessOutcome).failure!;
  expect(failure.code).toBe("E_TRAINER_FAILED");
  expect(failure.message).toContain("ValueError: constant does not require `num_warmup_steps`. Set None or 0. (at /sd-scripts/library/train_util.py:5296");
  expect(failure.message).toContain(join(runDir, "stderr.log"));
  expect(failure.message).not.toContain("CalledProcessError");
});
