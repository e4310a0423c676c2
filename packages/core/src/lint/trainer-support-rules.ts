import { KOHYA_PROFILES, kohyaSingleFilesRefusal } from "../compile/kohya/kohya-profiles.js";
import { settingRefusals } from "../compile/trainer-capabilities.js";
import { trainerFix } from "../trainers/support.js";
import { getCompatibility, PINNED_TRAINER_VERSIONS } from "../knowledge/trainers.js";
import { compareVersions } from "../knowledge/versions.js";
import type { Finding } from "./finding.js";
import type { Rule } from "./lint-rule.js";

/**
 * Trainer and hardware: does the named trainer train this base model at this version, does
 * the hardware kind match a local or hosted trainer, does it take regularisation images.
 * Registered in lint-contract.ts (RULE_FUNCTIONS).
 */
export const trainerSupport: Rule = ({ c, model }) => {
  const rec = getCompatibility(c.trainer.name, model.id);
  const out: Finding[] = [];
  if (!rec || !rec.supported) {
    out.push({
      rule: "trainer-unsupported-base",
      severity: "error",
      message: `${c.trainer.name} does not train ${model.label}.`,
      fix: trainerFix(c.trainer.name, model.id, c.hardware.kind),
      source: rec?.source ?? "shared/reference/trainers.md §7",
      field: "trainer.name",
    });
    return out;
  }
  if (rec.compiles === false) {
    const fix = trainerFix(c.trainer.name, model.id, c.hardware.kind);
    return [{ rule: "trainer-unsupported-base", severity: "error", message: `loraspec does not compile ${c.trainer.name} configs for ${model.label} yet.`, fix, source: rec.source, field: "trainer.name" }];
  }
  const version = c.trainer.version;
  if (!version) {
    if (c.trainer.name === "kohya" || c.trainer.name === "ai-toolkit") {
      const pin = PINNED_TRAINER_VERSIONS[c.trainer.name];
      out.push({
        rule: "trainer-version-unpinned",
        severity: "warning",
        message: `No ${c.trainer.name} version pinned: results and flags change between versions.`,
        fix: `Set trainer.version (loraspec's compiler targets ${pin.version}).`,
        source: pin.source,
        field: "trainer.version",
      });
    }
    return out;
  }
  if (rec.minVersion) {
    const cmp = compareVersions(version, rec.minVersion);
    if (cmp === undefined) {
      out.push({
        rule: "trainer-version-unchecked",
        severity: "info",
        message: `trainer.version '${version}' is not a version tag; cannot check it against ${rec.minVersion} for ${model.label}.`,
        fix: `Pin a release tag (${rec.minVersion} or later).`,
        source: rec.source,
        field: "trainer.version",
      });
    } else if (cmp < 0) {
      out.push({
        rule: "trainer-version-too-old",
        severity: rec.belowMin ?? "error",
        message: `${c.trainer.name} ${version} is older than ${rec.minVersion}, the first version known to ${rec.belowMin === "warning" ? "work well with" : "support"} ${model.label}.${rec.note ? ` ${rec.note}` : ""}`,
        fix: `Set trainer.version to ${rec.minVersion} or later.`,
        source: rec.source,
        field: "trainer.version",
      });
    }
  }
  return out;
};

/** The base's files in the form the trainer loads them: kohya's FLUX.1 script takes BFL single files on this machine only. */
export const trainerBaseFiles: Rule = ({ c, model }) => {
  const refusal = c.trainer.name === "kohya" ? kohyaSingleFilesRefusal(model.id, c.base.path) : undefined;
  if (!refusal) return [];
  const source = KOHYA_PROFILES[model.id]?.source ?? "shared/reference/trainers.md §2.2";
  return [{ rule: "kohya-flux-single-files", severity: "error", message: refusal.message, fix: refusal.hint, source, field: "base.path" }];
};

/** The optimizer and base precision the trainer takes (compile/trainer-capabilities.ts: its compiler refuses the rest). */
export const trainerSettings: Rule = ({ c }) =>
  settingRefusals(c).map((r) => ({ rule: "trainer-setting-unsupported", severity: "error" as const, message: r.message, fix: r.fix, source: r.source, field: r.field }));

export const hardwareTrainer: Rule = ({ c }) => {
  const falTrainer = c.trainer.name === "fal";
  const falHardware = c.hardware.kind === "fal";
  if (falTrainer === falHardware) return [];
  return [
    {
      rule: "hardware-trainer-mismatch",
      severity: "error",
      message: falTrainer
        ? "trainer.name is 'fal' (a hosted trainer) but hardware.kind is 'local'."
        : `hardware.kind is 'fal' but trainer.name is '${c.trainer.name}', a local trainer.`,
      fix: falTrainer ? "Set hardware.kind: fal." : "Set trainer.name: fal, or hardware.kind: local.",
      source: "shared/reference/trainers.md §4 (fal trainers are hosted queue jobs)",
      field: "hardware.kind",
    },
  ];
};

/** dataset.reg_path: the built-in trainer, kohya (is_reg subsets) and ai-toolkit (is_reg datasets) take reg images; fal's trainers take one ZIP. */
export const regImages: Rule = ({ c }) => {
  if (!c.dataset.reg_path || c.trainer.name !== "fal") return [];
  return [
    {
      rule: "reg-images-unsupported",
      severity: "error",
      message: "fal's LoRA trainers take one dataset ZIP and no regularisation images: dataset.reg_path would be ignored.",
      fix: "Remove dataset.reg_path, or train with diffusers, kohya or ai-toolkit.",
      source: "shared/reference/trainers.md §4.1 (fal trainer inputs: one images ZIP, no regularisation field)",
      field: "dataset.reg_path",
    },
  ];
};
