// Makes sure a headless Chromium is present for the browser tests (report and web page).
// No browser is downloaded by npm here: Debian's chromium package is used (playwright-core drives it).
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";

const CHROMIUM = process.env.LORASPEC_CHROMIUM ?? "/usr/bin/chromium";
if (existsSync(CHROMIUM)) {
  console.log(`chromium found: ${CHROMIUM}`);
  process.exit(0);
}
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const sudo = isRoot ? [] : ["sudo", "-n"];
function run(args) {
  const [cmd, ...rest] = [...sudo, ...args];
  console.log(`$ ${[cmd, ...rest].join(" ")}`);
  return spawnSync(cmd, rest, { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } }).status;
}
if (run(["apt-get", "update", "-qq"]) !== 0 || run(["apt-get", "install", "-y", "-qq", "chromium"]) !== 0) {
  console.error("setup-browser: could not install Debian's chromium; install it (apt-get install chromium) or set LORASPEC_CHROMIUM");
  process.exit(1);
}
