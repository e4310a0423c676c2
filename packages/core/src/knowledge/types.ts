/**
 * Every fact loraspec acts on is a record that says where it comes from and when it was true.
 * `source` is a URL or a document section; `asOf` is an ISO date (or month) the fact was read.
 * `verified: false` marks facts taken from the source guide that the reference notes could not
 * confirm in a public record; lint output says so.
 */
export interface Sourced {
  source: string;
  asOf: string;
  verified?: boolean;
  note?: string;
}

export interface Range {
  min: number;
  max: number;
}
