import type { Finding } from "@loraspec/core/lint/finding.js";
import { imagesReadBy, runStoppers, type FolderReader } from "./dataset-findings.js";
import { nameFew } from "./name-few.js";
import type { DatasetScan } from "./scan-dataset.js";

/**
 * The regularisation folder (dataset.reg_path) is never prepared: every run hands it to the trainer as it is
 * (engine run/build-train-job.ts), which reads it as it reads any folder (core knowledge/trainer-folder-reading.ts).
 * Images it never reads (sub-folders, formats it does not open) are the warning `reg-images-unread` and are not
 * counted; a file it reads but cannot open (empty, truncated, over its pixel limit), or a folder of which it reads
 * nothing, stops the run: the error `reg-images-unreadable`.
 */
export function regFindings(scan: DatasetScan, reader?: FolderReader): { findings: Finding[]; images: DatasetScan["images"] } {
  const field = "dataset.reg_path";
  const images = imagesReadBy(scan, reader);
  const unread = scan.images.filter((i) => !images.includes(i));
  const stoppers = runStoppers(scan, reader);
  const how = reader ? `the trainer reads ${reader.extensions.join(" ")} files${reader.subfolders ? "" : " in the folder itself, not in sub-folders"}` : "";
  const findings: Finding[] = [];
  if (stoppers.length || (reader && !images.length && scan.images.length)) {
    const parts = [
      stoppers.length ? `it cannot open ${stoppers.length} file(s): ${stoppers.slice(0, 8).map((s) => `${s.file} (${s.code}: ${s.message})`).join("; ")}` : "",
      !images.length && scan.images.length ? `it reads none of its ${scan.images.length} image(s) (${how})` : "",
    ].filter(Boolean);
    findings.push({
      rule: "reg-images-unreadable",
      severity: "error",
      field,
      message: `the run hands ${scan.path} to the trainer as it is (prep never prepares regularisation images), and ${parts.join("; and ")}: the run would stop there`,
      fix: "Remove or re-export those files (PNG or JPEG under the trainer's pixel limit), and keep the images in the folder itself.",
      source: `engine run/build-train-job.ts (dataset.reg_path is handed on as it is); ${reader?.source ?? ""}`,
      files: [...stoppers.map((s) => s.file), ...(images.length ? [] : unread.map((i) => i.file))],
    });
  }
  if (unread.length && images.length) {
    findings.push({
      rule: "reg-images-unread",
      severity: "warning",
      field,
      message: `the trainer never reads ${unread.length} of the ${scan.images.length} regularisation image(s) (${how}): ${nameFew(unread.map((i) => i.file))}`,
      fix: "Move them into the folder itself and convert them to PNG or JPEG, or remove them; they are not counted.",
      source: reader?.source ?? "",
      files: unread.map((i) => i.file),
    });
  }
  return { findings, images };
}
