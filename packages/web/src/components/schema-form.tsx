import { useEffect, useMemo, useState } from "react";

/** The subset of JSON Schema that zod's toJSONSchema emits for the contract. */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: Array<string | number>;
  const?: unknown;
  default?: unknown;
  description?: string;
  title?: string;
  items?: JsonSchema;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  anyOf?: JsonSchema[];
}

type Path = Array<string | number>;

export interface SchemaFormProps {
  schema: JsonSchema;
  /** The contract as written (raw YAML data, defaults not filled in). */
  value: Record<string, unknown>;
  /** Fields with problems, by dotted path, to mark them. */
  problems: Map<string, { message: string; severity: "error" | "warning" }>;
  /** Set (or, with undefined, remove) one field; `raw` is what was typed, for numbers. */
  onChange: (path: Path, value: unknown, raw?: string) => void;
  disabled?: boolean;
}

/**
 * A form generated from the contract's JSON Schema: one fieldset per section, a control per
 * field chosen by type (enum -> select, number, boolean -> checkbox, string list -> one per
 * line), the schema's description as help. Nothing here knows the contract's fields by name.
 */
export function SchemaForm({ schema, value, problems, onChange, disabled }: SchemaFormProps) {
  const sections = useMemo(() => Object.entries(schema.properties ?? {}), [schema]);
  const top = sections.filter(([, s]) => s.type !== "object");
  const groups = sections.filter(([, s]) => s.type === "object");
  return (
    <fieldset className="schema-form" disabled={disabled}>
      <section className="form-section">
        <h3>General</h3>
        {top.map(([key, s]) => (
          <Field key={key} name={key} path={[key]} schema={s} value={value[key]} required={schema.required?.includes(key)} problems={problems} onChange={onChange} />
        ))}
      </section>
      {groups.map(([key, s]) => (
        <Section key={key} name={key} schema={s} initiallyOpen={(schema.required ?? []).includes(key)} problem={hasProblemUnder(problems, key)}>
          {Object.entries(s.properties ?? {}).map(([sub, ss]) => (
            <Field
              key={sub}
              name={sub}
              path={[key, sub]}
              schema={ss}
              value={(value[key] as Record<string, unknown> | undefined)?.[sub]}
              required={s.required?.includes(sub)}
              problems={problems}
              onChange={onChange}
            />
          ))}
        </Section>
      ))}
    </fieldset>
  );
}

/**
 * A collapsible section whose open state belongs to the user: an error opens it, but nothing
 * closes it except a click (a fixed error must not fold the section away mid-edit).
 */
function Section(props: { name: string; schema: JsonSchema; initiallyOpen: boolean; problem?: "error" | "warning"; children: React.ReactNode }) {
  const { name, schema, initiallyOpen, problem, children } = props;
  const [open, setOpen] = useState(initiallyOpen || problem === "error");
  useEffect(() => {
    if (problem === "error") setOpen(true);
  }, [problem]);
  return (
    <details className="form-section" open={open} onToggle={(e) => setOpen(e.currentTarget.open)} data-section={name}>
      <summary>
        <span className="section-name">{name}</span>
        {problem ? <span className={`dot dot-${problem}`} title="has findings" /> : null}
        <span className="section-help">{schema.description}</span>
      </summary>
      {children}
    </details>
  );
}

function hasProblemUnder(problems: SchemaFormProps["problems"], key: string): "error" | "warning" | undefined {
  let found: "error" | "warning" | undefined;
  for (const [k, v] of problems) if (k === key || k.startsWith(`${key}.`)) found = found === "error" ? found : v.severity;
  return found;
}

interface FieldProps {
  name: string;
  path: Path;
  schema: JsonSchema;
  value: unknown;
  required?: boolean;
  problems: Map<string, { message: string; severity: "error" | "warning" }>;
  onChange: (path: Path, value: unknown, raw?: string) => void;
}

function Field({ name, path, schema, value, required, problems, onChange }: FieldProps) {
  const dotted = path.join(".");
  const problem = problems.get(dotted);
  const id = `f-${dotted.replace(/\./g, "-")}`;
  const placeholder = schema.default !== undefined ? `default: ${formatDefault(schema.default)}` : required ? "required" : "optional";
  let control: React.ReactNode;
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;

  if (schema.const !== undefined) {
    control = <input id={id} value={String(value ?? schema.const)} readOnly className="readonly" />;
  } else if (schema.enum) {
    control = (
      <select id={id} value={value === undefined ? "" : String(value)} onChange={(e) => onChange(path, e.target.value === "" ? undefined : e.target.value)}>
        <option value="">{required ? "— choose —" : placeholder}</option>
        {schema.enum.map((v) => (
          <option key={String(v)} value={String(v)}>
            {String(v)}
          </option>
        ))}
      </select>
    );
  } else if (type === "boolean") {
    const checked = value === undefined ? Boolean(schema.default) : Boolean(value);
    control = (
      <label className="check">
        <input id={id} type="checkbox" checked={checked} onChange={(e) => onChange(path, e.target.checked)} />
        <span className="muted">{value === undefined ? "(default)" : ""}</span>
      </label>
    );
  } else if (type === "number" || type === "integer") {
    control = <NumberInput id={id} value={value} placeholder={placeholder} onChange={(v, raw) => onChange(path, v, raw)} />;
  } else if (type === "array" && schema.items && (schema.items.type === "string" || schema.items.type === "number" || schema.items.type === "integer" || schema.items.enum)) {
    const list = Array.isArray(value) ? value : undefined;
    const numeric = schema.items.type === "number" || schema.items.type === "integer";
    control = (
      <textarea
        id={id}
        rows={Math.min(4, Math.max(1, list?.length ?? 1))}
        value={list ? list.join(numeric ? ", " : "\n") : ""}
        placeholder={schema.default !== undefined ? formatDefault(schema.default) : numeric ? "1, 2, 3" : "one per line"}
        onChange={(e) => {
          const raw = e.target.value;
          if (raw.trim() === "") return onChange(path, undefined);
          const parts = numeric ? raw.split(/[,\s]+/).filter(Boolean).map(Number) : raw.split("\n");
          onChange(path, numeric && parts.some((p) => Number.isNaN(p)) ? raw : parts);
        }}
      />
    );
  } else if (type === "object" && schema.properties) {
    // A nested section (dataset.buckets): one field per property, written at its full path.
    const obj = (value && typeof value === "object" ? value : {}) as Record<string, unknown>;
    control = (
      <div className="subfields" id={id}>
        {Object.entries(schema.properties).map(([sub, ss]) => (
          <Field key={sub} name={sub} path={[...path, sub]} schema={ss} value={obj[sub]} required={schema.required?.includes(sub)} problems={problems} onChange={onChange} />
        ))}
      </div>
    );
  } else if (type === "array") {
    control = <div className="muted small">edit in YAML ({Array.isArray(value) ? value.length : 0} item(s))</div>;
  } else {
    control = (
      <input
        id={id}
        type="text"
        value={value === undefined || value === null ? "" : String(value)}
        placeholder={placeholder}
        onChange={(e) => onChange(path, e.target.value === "" ? undefined : e.target.value)}
      />
    );
  }
  return (
    <div className={`field${problem ? ` has-${problem.severity}` : ""}`} data-field={dotted}>
      <label htmlFor={id} title={schema.description}>
        {name}
        {required ? <span className="req">*</span> : null}
      </label>
      <div className="control">
        {control}
        {problem ? <div className={`field-problem field-${problem.severity}`}>{problem.message}</div> : null}
      </div>
    </div>
  );
}

/** A JSON number, complete: what the field writes to the contract as a number. */
const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?$/;
/** Also taken as numbers when typed: `.5`, `5.`, `+2`, leading zeros (YAML reads them the same). */
const LOOSE_NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/**
 * A number field that keeps what is being typed: `0.` or `1e-` on the way to `0.05` or `1e-4`
 * stay in the box (the contract gets the text, which lint marks, until it is a number again),
 * instead of being re-rendered from the parsed value and losing the point or the exponent.
 */
function NumberInput({ id, value, placeholder, onChange }: { id: string; value: unknown; placeholder: string; onChange: (v: unknown, raw?: string) => void }) {
  const shown = value === undefined || value === null ? "" : String(value);
  const [draft, setDraft] = useState(shown);
  // Follow edits made elsewhere (the YAML box, Revert) unless the draft already means that value.
  useEffect(() => {
    setDraft((d) => (d.trim() !== "" && LOOSE_NUMBER.test(d.trim()) && Number(d) === value) || (d === "" && shown === "") || d === shown ? d : shown);
  }, [value, shown]);
  return (
    <input
      id={id}
      type="text"
      inputMode="decimal"
      value={draft}
      placeholder={placeholder}
      onChange={(e) => {
        const text = e.target.value;
        setDraft(text);
        const raw = text.trim();
        if (raw === "") return onChange(undefined);
        // Keep what was typed when it is not a number yet: the schema marks it and the user sees why.
        if (JSON_NUMBER.test(raw) || LOOSE_NUMBER.test(raw)) onChange(Number(raw), raw);
        else onChange(raw);
      }}
    />
  );
}

function formatDefault(v: unknown): string {
  if (Array.isArray(v)) return v.join(", ");
  if (typeof v === "object" && v !== null) return JSON.stringify(v);
  return String(v);
}
