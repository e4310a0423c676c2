/** One argparse option of an sd-scripts training script. */
export interface KohyaFlagSpec {
  /** `flag`: store_true (a TOML boolean); `value`: takes a value. */
  kind: "flag" | "value";
  /** argparse `type` (str, int, float, int_or_float, Path); absent means str. */
  type?: string;
  /** argparse `nargs` ("*", "+"): the TOML value is then an array. */
  nargs?: string;
  choices?: ReadonlyArray<string | number | null>;
}
