import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { describeTrainerException, lastTrainerException } from "@loraspec/core/parse/trainer-exception.js";
import { splitLines } from "@loraspec/core/parse/split-lines.js";

const fixture = (rel: string) => splitLines(readFileSync(new URL(`./fixtures/${rel}`, import.meta.url), "utf8"));

// accelerate launch's own traceback after the child died (accelerate 1.6.0 commands/launch.py simple_launcher).
const ACCELERATE_WRAPPER = [
  "Traceback (most recent call last):",
  '  File "/venv/bin/accelerate", line 8, in <module>',
  "    sys.exit(main())",
  '  File "/venv/lib/python3.10/site-packages/accelerate/commands/launch.py", line 1199, in launch_command',
  "    simple_launcher(args)",
  '  File "/venv/lib/python3.10/site-packages/accelerate/commands/launch.py", line 785, in simple_launcher',
  "    raise subprocess.CalledProcessError(returncode=process.returncode, cmd=cmd)",
  "subprocess.CalledProcessError: Command '['/venv/bin/python', 'sdxl_train_network.py', '--config_file', 'args.toml']' returned non-zero exit status 1.",
];

const SCHEDULER_CRASH = [
  "2026-12-01 10:00:01 INFO     caching latents...                 train_util.py:1198",
  "Traceback (most recent call last):",
  '  File "/sd-scripts/sdxl_train_network.py", line 229, in <module>',
  "    trainer.train(args)",
  '  File "/sd-scripts/train_network.py", line 811, in train',
  "    lr_scheduler = train_util.get_scheduler_fix(args, optimizer, accelerator.num_processes)",
  '  File "/sd-scripts/library/train_util.py", line 5330, in get_scheduler_fix',
  "    return wrap_check_needless_num_warmup_steps(schedule_func(optimizer, **lr_scheduler_kwargs))",
  '  File "/sd-scripts/library/train_util.py", line 5296, in wrap_check_needless_num_warmup_steps',
  '    raise ValueError(f"{name} does not require `num_warmup_steps`. Set None or 0.")',
  "ValueError: constant does not require `num_warmup_steps`. Set None or 0.",
];

const OFFLINE_CHAIN = [
  "Traceback (most recent call last):",
  '  File "/venv/lib/python3.10/site-packages/urllib3/connection.py", line 198, in _new_conn',
  "    sock = connection.create_connection(",
  "socket.gaierror: [Errno -3] Temporary failure in name resolution",
  "",
  "During handling of the above exception, another exception occurred:",
  "",
  "Traceback (most recent call last):",
  '  File "/sd-scripts/library/strategy_sdxl.py", line 29, in __init__',
  "    self.tokenizer1 = self._load_tokenizer(CLIPTokenizer, TOKENIZER1_PATH, tokenizer_cache_dir=tokenizer_cache_dir)",
  "requests.exceptions.ConnectionError: (MaxRetryError(\"HTTPSConnectionPool(host='huggingface.co', port=443): Max retries exceeded\"))",
];

describe("lastTrainerException", () => {
  it("skips accelerate's CalledProcessError and returns sd-scripts' own exception with its frame", () => {
    const e = lastTrainerException([...SCHEDULER_CRASH, ...ACCELERATE_WRAPPER]);
    expect(e).toEqual({
      type: "ValueError",
      message: "constant does not require `num_warmup_steps`. Set None or 0.",
      where: "/sd-scripts/library/train_util.py:5296 in wrap_check_needless_num_warmup_steps",
    });
    expect(describeTrainerException(e!)).toBe(
      "ValueError: constant does not require `num_warmup_steps`. Set None or 0. (at /sd-scripts/library/train_util.py:5296 in wrap_check_needless_num_warmup_steps)",
    );
  });

  it("takes the last exception of a chain (the Hugging Face ConnectionError, not the socket error)", () => {
    expect(lastTrainerException([...OFFLINE_CHAIN, ...ACCELERATE_WRAPPER])?.type).toBe("requests.exceptions.ConnectionError");
  });

  it("keeps the continuation lines of a state_dict RuntimeError", () => {
    const lines = ["Traceback (most recent call last):", '  File "/x.py", line 1, in f', "RuntimeError: Error(s) in loading state_dict for UNet2DConditionModel:", "\tMissing key(s) in state_dict: \"conv_in.weight\".", "\tUnexpected key(s): \"foo\".", ...ACCELERATE_WRAPPER];
    expect(lastTrainerException(lines)?.message).toBe('Error(s) in loading state_dict for UNet2DConditionModel: Missing key(s) in state_dict: "conv_in.weight". Unexpected key(s): "foo".');
  });

  it("finds the real OOM in a recorded sd-scripts crash", () => {
    expect(lastTrainerException(fixture("kohya/sdxl-oom.log"))?.type).toBe("torch.OutOfMemoryError");
  });

  it("finds the real ValueError in a recorded ai-toolkit crash (the tokenizer got neg: False)", () => {
    const e = lastTrainerException(fixture("ai-toolkit/gpu-sdxl-fresh-crash-in-sampling.log"));
    expect(e?.type).toBe("ValueError");
    expect(e?.message).toMatch(/^text input must be of type `str`/);
  });

  it("returns nothing for a clean log and for a launcher-only traceback", () => {
    expect(lastTrainerException(fixture("kohya/sdxl-6steps-save2.log"))).toBeUndefined();
    expect(lastTrainerException(ACCELERATE_WRAPPER)).toBeUndefined();
  });

  it("falls back to ai-toolkit's printed 'Error running job' line", () => {
    expect(lastTrainerException(["Error running job: boom", "========"])).toEqual({ type: "Exception", message: "boom" });
  });
});
