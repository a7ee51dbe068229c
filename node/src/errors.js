// Errors with the Rust host's kinds and fields. In JavaScript the fields are
// camelCase (`limitMs`, `sizeBytes`), as the rest of the API is; `toJSON()`
// gives the host's own form (`limit_ms`), as its HTTP errors carry it. Each
// error also has a Node-style `code`: `ERR_NEXUS_` and the kind in capitals
// (`ERR_NEXUS_TIMEOUT`).

/** `limit_ms` → `limitMs`. */
export function camel(name) {
  return name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
}

/** A record with camelCase keys, all the way down. */
export function camelKeys(value) {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [camel(k), camelKeys(v)]));
}

export class NexusError extends Error {
  /**
   * @param {string} kind the host's error kind
   * @param {string} message
   * @param {Record<string, unknown>} [fields] the kind's own fields, with
   *   the host's names (`limit_ms`)
   */
  constructor(kind, message, fields = {}) {
    super(message);
    this.name = 'NexusError';
    this.kind = kind;
    this.code = `ERR_NEXUS_${kind.toUpperCase()}`;
    Object.assign(this, camelKeys(fields));
    this.fields = fields;
  }

  /** `{kind, message, ...fields}`, as the host's HTTP errors carry them. */
  toJSON() {
    return { kind: this.kind, message: this.message, ...this.fields };
  }
}

/** The guest's `handler-error` variant (jco's `{tag, val}`) as a NexusError. */
export function fromGuest(error) {
  const { tag, val } = error;
  switch (tag) {
    case 'compile':
      return new NexusError('compile_error', val.message, { file: val.file, line: val.line, column: val.column });
    case 'runtime':
      return new NexusError('runtime_error', val.message, { name: val.name, stack: val.stack });
    case 'invalid-input':
      return new NexusError('invalid_input', val);
    case 'invalid-output':
      return new NexusError('invalid_output', val);
    case 'invalid-bytecode':
      return new NexusError('invalid_bytecode', val);
    case 'invalid-module':
      return new NexusError('invalid_module', val);
    default:
      return new NexusError('trap', `unknown guest error ${tag}`);
  }
}

/** Plain data for postMessage, and back. */
export function toWire(e) {
  return { kind: e.kind, message: e.message, fields: e.fields };
}

export function fromWire(w) {
  return new NexusError(w.kind, w.message, w.fields);
}

/** A call's input as JSON text: a string as it is, anything else stringified. */
export function inputJson(input) {
  if (typeof input === 'string') return input;
  try {
    const json = JSON.stringify(input);
    if (json === undefined) throw new Error(`${typeof input} has no JSON form`);
    return json;
  } catch (e) {
    throw new NexusError('invalid_input', `the input is not JSON-able: ${e.message}`);
  }
}
