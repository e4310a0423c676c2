import type { Command } from "commander";
import { registerCheck } from "./check.js";
import { registerInit } from "./init.js";
import { registerPlan } from "./plan.js";
import { registerPrep } from "./prep.js";
import { registerCaption } from "./caption.js";
import { registerSample } from "./sample.js";
import { registerTrain } from "./train.js";
import { registerRuns } from "./runs.js";
import { registerLogs } from "./logs.js";
import { registerStop } from "./stop.js";
import { registerUi } from "./ui.js";
import { registerInspect } from "./inspect.js";
import { registerConvert } from "./convert.js";
import { registerMerge } from "./merge.js";
import { registerSetup } from "./setup.js";
import { registerValidate } from "./validate.js";
import { registerExportScript } from "./export-script.js";
import { registerDoctor } from "./doctor.js";

/** Each command lives in its own file and registers itself; heavy code loads lazily in actions. */
export type Registration = (program: Command) => void;

export const registrations: Registration[] = [registerInit, registerCheck, registerPlan, registerPrep, registerCaption, registerSample, registerTrain, registerRuns, registerLogs, registerStop, registerUi, registerInspect, registerConvert, registerMerge, registerSetup, registerValidate, registerExportScript, registerDoctor];
