/** How many names a message lists before "and N more": enough to recognise, short enough to read. */
export const NAMES_SHOWN = 8;

/** `a, b, c` or, past `shown`, `a, b, c and 5 more`: a list of files in one line of a message. */
export function nameFew(names: readonly string[], shown = NAMES_SHOWN): string {
  if (names.length <= shown) return names.join(", ");
  return `${names.slice(0, shown).join(", ")} and ${names.length - shown} more`;
}
