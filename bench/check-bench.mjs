// Benchmarks `loraspec check` on a 50-image folder (1024x1024 PNGs with captions) against bare
// Node start-up (`node -e ""`) measured in the same run, and writes the figures into
// bench/RESULTS.md between the check-bench markers. Run: npm run build && node bench/check-bench.mjs [runs]
import { spawnSync } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm, writeFile, cp } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";

const root = fileURLToPath(new URL("..", import.meta.url));
const runs = Number(process.argv[2] ?? 15);
const bin = join(root, "bin", "loraspec.mjs");
const dir = await mkdtemp(join(tmpdir(), "loraspec-bench-"));

try {
  await mkdir(join(dir, "dataset"));
  for (let i = 0; i < 50; i++) {
    const hue = (i * 47) % 255;
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="1024" height="1024"><rect width="1024" height="1024" fill="rgb(${hue},120,${255 - hue})"/><circle cx="${200 + i * 12}" cy="512" r="${120 + i}" fill="#f39a3b"/></svg>`;
    await sharp(Buffer.from(svg)).png().toFile(join(dir, "dataset", `img_${String(i).padStart(2, "0")}.png`));
    await writeFile(join(dir, "dataset", `img_${String(i).padStart(2, "0")}.txt`), `txcl, a round orange creature, picture ${i}\n`);
  }
  const example = await readFile(join(root, "examples", "character", "lora.yaml"), "utf8");
  await writeFile(join(dir, "lora.yaml"), example.replace("expected_images: 20", "expected_images: 50").replace("target: character", "target: style"));
  await cp(join(root, "schema"), join(dir, "schema"), { recursive: true });

  const time = (args) => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { cwd: dir, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", FAL_KEY: "" } });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0 && r.status !== 1) throw new Error(`${args.join(" ")} exited ${r.status}: ${r.stderr}`);
    return ms;
  };
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  // Warm the page cache once, then interleave so both see the same machine state.
  time(["-e", ""]);
  time([bin, "check"]);
  const node = [];
  const check = [];
  const help = [];
  for (let i = 0; i < runs; i++) {
    node.push(time(["-e", ""]));
    help.push(time([bin, "--help"]));
    check.push(time([bin, "check"]));
  }
  const m = { node: median(node), help: median(help), check: median(check) };
  const date = new Date().toISOString().slice(0, 10);
  const machine = `${cpus().length}-core ${cpus()[0]?.model.trim() ?? "CPU"}, Node ${process.version}, ${process.platform}`;
  const lines = [
    "<!-- check-bench:start (written by bench/check-bench.mjs) -->",
    "## Start-up and `loraspec check`",
    "",
    `Machine: ${machine}. Date: ${date}. Median of ${runs} runs each, interleaved, wall time of the whole process (spawn to exit).`,
    "",
    "| command | median ms | ratio to bare `node -e \"\"` |",
    "|---|---|---|",
    `| \`node -e ""\` (baseline) | ${m.node.toFixed(0)} | 1.00 |`,
    `| \`loraspec --help\` (CLI start-up) | ${m.help.toFixed(0)} | ${(m.help / m.node).toFixed(2)} |`,
    `| \`loraspec check\` on 50 x 1024x1024 PNG + captions | ${m.check.toFixed(0)} | ${(m.check / m.node).toFixed(2)} |`,
    "",
    `Load average during the run: ${loadavg().map((x) => x.toFixed(1)).join(" / ")} (1/5/15 min) on ${cpus().length} cores; absolute times scale with load, the ratio to the baseline much less.`,
    `Aim: \`loraspec check\` under 300 ms wall on that folder: ${m.check < 300 ? "met" : "NOT met"} here (${m.check.toFixed(0)} ms).`,
    "<!-- check-bench:end -->",
  ];
  const resultsPath = join(root, "bench", "RESULTS.md");
  let results = await readFile(resultsPath, "utf8").catch(() => "# Benchmark results\n");
  const block = lines.join("\n");
  results = /<!-- check-bench:start[\s\S]*?<!-- check-bench:end -->/.test(results)
    ? results.replace(/<!-- check-bench:start[\s\S]*?<!-- check-bench:end -->/, block)
    : `${results.trimEnd()}\n\n${block}\n`;
  await writeFile(resultsPath, results);
  console.log(block);
} finally {
  await rm(dir, { recursive: true, force: true });
}
