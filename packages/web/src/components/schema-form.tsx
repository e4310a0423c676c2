import { useMemo } from "react";

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
  /** Set (or, with undefined, remove) one field. */
  onChange: (path: Path, value: unknown) => void;
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
        <details key={key} className="form-section" open={(schema.required ?? []).includes(key) || hasProblemUnder(problems, key) === "error"}>
          <summary>
            <span className="section-name">{key}</span>
            {hasProblemUnder(problems, key) ? <span className={`dot dot-${hasProblemUnder(problems, key)}`} title="has findings" /> : null}
            <span className="section-help">{s.description}</span>
          </summary>
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
        </details>
      ))}
    </fieldset>
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
  onChange: (path: Path, value: unknown) => void;
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
    control = <NumberInput id={id} value={value} placeholder={placeholder} onChange={(v) => onChange(path, v)} />;
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

function NumberInput({ id, value, placeholder, onChange }: { id: string; value: unknown; placeholder: string; onChange: (v: unknown) => void }) {
  return (
    <input
      id={id}
      type="text"
      inputMode="decimal"
      value={value === undefined || value === null ? "" : String(value)}
      placeholder={placeholder}
      onChange={(e) => {
        const raw = e.target.value.trim();
        if (raw === "") return onChange(undefined);
        const n = Number(raw);
        // Keep what was typed when it is not a number yet: the schema marks it and the user sees why.
        onChange(Number.isFinite(n) && /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(raw) ? n : raw);
      }}
    />
  );
}

function formatDefault(v: unknown): string {
  if (Array.isArray(v)) return v.join(", ");
  if (typeof v === "object" && v !== null) return JSON.stringify(v);
  return String(v);
}
