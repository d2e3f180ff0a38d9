// Constrained decoding for `response_format: {"type": "json_schema"}`: at every step only the tokens
// that keep the output a prefix of a JSON text matching the schema are allowed, and only while the
// shortest way to finish it still fits the tokens left, so the answer always parses and validates
// (the approach of llama.cpp's grammars and Outlines, Willard & Louf 2023, over bytes).
//
// The schema compiles to a small tree of nodes (object, array, string, number, literal, union); a
// parse state is an immutable stack of frames, one per open value, and feeding a byte returns the
// states it can lead to (usually one; more under anyOf). Tokens are checked as byte strings through
// a trie of the vocabulary, so a prefix shared by many tokens is parsed once.
//
// What the generated JSON looks like: no whitespace except one optional space after ':' and ',';
// object properties in the schema's order (optional ones may be left out; other properties never
// appear), numbers of at most 15 integer and 15 fraction digits. Every such text is valid JSON that
// validates against the schema. Keywords that cannot be enforced byte by byte (pattern, format,
// minimum, ...) are refused with a 400 naming them, never ignored.

/** A schema this decoder cannot enforce; the message names the keyword and where it is. */
export class SchemaError extends Error {}

interface Prop {
  name: string;
  /** The key as JSON bytes after the opening quote: escaped content and the closing quote. */
  key: string;
  node: Node;
  required: boolean;
}
interface ObjectNode {
  kind: "object";
  props: Prop[];
  /** Free-form objects (no properties listed): the schema of every value; null: no other keys. */
  extra: Node | null;
}
interface ArrayNode {
  kind: "array";
  items: Node;
  min: number;
  max: number;
}
interface StringNode {
  kind: "string";
  min: number;
  max: number;
}
interface NumberNode {
  kind: "number";
  integer: boolean;
}
interface LiteralNode {
  kind: "literal";
  /** The JSON texts allowed, as byte strings. */
  values: string[];
}
interface UnionNode {
  kind: "union";
  options: Node[];
}
export type Node = ObjectNode | ArrayNode | StringNode | NumberNode | LiteralNode | UnionNode;

// Byte strings are JS strings with one char per byte (0-255): cheap to slice, compare and join.
const utf8 = new TextEncoder();
const bytesOf = (text: string): string => String.fromCharCode(...utf8.encode(text));

/** Any JSON value (the schema `{}` or `true`, and values of free-form objects). */
const ANY: UnionNode = { kind: "union", options: [] };
ANY.options.push(
  { kind: "object", props: [], extra: ANY },
  { kind: "array", items: ANY, min: 0, max: Number.POSITIVE_INFINITY },
  { kind: "string", min: 0, max: Number.POSITIVE_INFINITY },
  { kind: "number", integer: false },
  { kind: "literal", values: ["true", "false", "null"] },
);

const ANNOTATIONS = new Set([
  "title",
  "description",
  "default",
  "examples",
  "$schema",
  "$id",
  "$comment",
  "deprecated",
  "readOnly",
  "writeOnly",
]);
const SUPPORTED = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "minItems",
  "maxItems",
  "minLength",
  "maxLength",
  "enum",
  "const",
  "anyOf",
  "allOf",
  "$ref",
  "$defs",
  "definitions",
  ...ANNOTATIONS,
]);
const TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"];

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Compile a JSON schema (draft 2020-12's keywords that constrain structure) to a decoding grammar. */
export function compileSchema(schema: unknown): Grammar {
  const refs = new Map<string, Node>();
  const root = schema;

  function count(s: Record<string, unknown>, k: string, where: string, fallback: number): number {
    const v = s[k];
    if (v === undefined) return fallback;
    if (!Number.isInteger(v) || (v as number) < 0) throw new SchemaError(`${where}: ${k} must be a non-negative integer`);
    return v as number;
  }

  function resolve(ref: string, where: string): Node {
    const known = refs.get(ref);
    if (known) return known;
    if (!ref.startsWith("#")) throw new SchemaError(`${where}: only local $ref ("#/$defs/name") is supported, not '${ref}'`);
    let target: unknown = root;
    for (const part of ref.slice(1).split("/").filter(Boolean)) {
      const key = decodeURIComponent(part).replace(/~1/g, "/").replace(/~0/g, "~");
      target = isObj(target) ? target[key] : undefined;
      if (target === undefined) throw new SchemaError(`${where}: $ref '${ref}' points at nothing`);
    }
    // A placeholder first, filled in after: recursive schemas (a tree whose children are trees) work.
    const slot: UnionNode = { kind: "union", options: [] };
    refs.set(ref, slot);
    slot.options.push(compile(target, ref));
    return slot;
  }

  function compile(s: unknown, where: string): Node {
    if (s === true || (isObj(s) && Object.keys(s).every((k) => ANNOTATIONS.has(k)))) return ANY;
    if (!isObj(s)) throw new SchemaError(`${where}: a schema must be an object or true (got ${JSON.stringify(s)})`);
    for (const k of Object.keys(s)) {
      if (!SUPPORTED.has(k)) {
        throw new SchemaError(
          `${where}: the keyword '${k}' is not supported by constrained decoding (supported: ${[...SUPPORTED].filter((x) => !ANNOTATIONS.has(x)).join(", ")})`,
        );
      }
    }
    if (s.$ref !== undefined) {
      if (typeof s.$ref !== "string") throw new SchemaError(`${where}: $ref must be a string`);
      const others = Object.keys(s).filter((k) => k !== "$ref" && k !== "$defs" && k !== "definitions" && !ANNOTATIONS.has(k));
      if (others.length)
        throw new SchemaError(`${where}: $ref beside '${others[0]}' is not supported; put the keywords in the referenced schema`);
      return resolve(s.$ref, where);
    }
    if (s.allOf !== undefined) {
      if (!Array.isArray(s.allOf) || s.allOf.length !== 1 || Object.keys(s).some((k) => k !== "allOf" && !ANNOTATIONS.has(k)))
        throw new SchemaError(`${where}: allOf is supported only with a single schema and nothing beside it`);
      return compile(s.allOf[0], `${where}/allOf/0`);
    }
    if (s.anyOf !== undefined) {
      if (!Array.isArray(s.anyOf) || s.anyOf.length === 0) throw new SchemaError(`${where}: anyOf must be a non-empty array of schemas`);
      return { kind: "union", options: s.anyOf.map((o, i) => compile(o, `${where}/anyOf/${i}`)) };
    }
    let types: string[];
    if (s.type === undefined) {
      types = s.properties !== undefined || s.required !== undefined || s.additionalProperties !== undefined ? ["object"] : [];
      if (s.items !== undefined || s.minItems !== undefined || s.maxItems !== undefined) types.push("array");
      if (s.minLength !== undefined || s.maxLength !== undefined) types.push("string");
      if (types.length === 0) types = TYPES;
    } else {
      types = Array.isArray(s.type) ? s.type : [s.type];
      for (const t of types)
        if (!TYPES.includes(t)) throw new SchemaError(`${where}: unknown type ${JSON.stringify(t)}; use ${TYPES.join(", ")}`);
    }
    const allows = (v: unknown) =>
      types.some(
        (t) =>
          (t === "null" && v === null) ||
          (t === "boolean" && typeof v === "boolean") ||
          (t === "integer" && Number.isInteger(v)) ||
          (t === "number" && typeof v === "number") ||
          (t === "string" && typeof v === "string") ||
          (t === "array" && Array.isArray(v)) ||
          (t === "object" && isObj(v)),
      );
    if (s.enum !== undefined || s.const !== undefined) {
      const values = s.const !== undefined ? [s.const] : s.enum;
      if (!Array.isArray(values) || values.length === 0) throw new SchemaError(`${where}: enum must be a non-empty array`);
      const kept = values.filter(allows);
      if (kept.length === 0) throw new SchemaError(`${where}: no value of enum/const has the schema's type`);
      return { kind: "literal", values: kept.map((v) => bytesOf(JSON.stringify(v))) };
    }
    const options = types.map((t) => compileType(s, t, where));
    return options.length === 1 ? (options[0] as Node) : { kind: "union", options };
  }

  function compileType(s: Record<string, unknown>, t: string, where: string): Node {
    switch (t) {
      case "null":
        return { kind: "literal", values: ["null"] };
      case "boolean":
        return { kind: "literal", values: ["true", "false"] };
      case "number":
      case "integer":
        return { kind: "number", integer: t === "integer" };
      case "string": {
        const min = count(s, "minLength", where, 0);
        const max = count(s, "maxLength", where, Number.POSITIVE_INFINITY);
        if (min > max) throw new SchemaError(`${where}: minLength ${min} is above maxLength ${max}`);
        return { kind: "string", min, max };
      }
      case "array": {
        const min = count(s, "minItems", where, 0);
        const max = count(s, "maxItems", where, Number.POSITIVE_INFINITY);
        if (min > max) throw new SchemaError(`${where}: minItems ${min} is above maxItems ${max}`);
        if (Array.isArray(s.items)) throw new SchemaError(`${where}: items must be one schema (tuple items are not supported)`);
        return { kind: "array", items: s.items === undefined ? ANY : compile(s.items, `${where}/items`), min, max };
      }
      default: {
        const props = s.properties ?? {};
        if (!isObj(props)) throw new SchemaError(`${where}: properties must be an object`);
        const required = s.required ?? [];
        if (!Array.isArray(required) || required.some((r) => typeof r !== "string"))
          throw new SchemaError(`${where}: required must be an array of property names`);
        const names = Object.keys(props);
        for (const r of required) {
          if (!names.includes(r))
            throw new SchemaError(`${where}: required property '${r}' is not in properties; list it there with its schema`);
        }
        const add = s.additionalProperties;
        if (add !== undefined && typeof add !== "boolean" && !isObj(add))
          throw new SchemaError(`${where}: additionalProperties must be a boolean or a schema`);
        // Listed properties only, in order; an object with none listed is free-form unless closed.
        const extra =
          names.length > 0 || add === false
            ? null
            : add === undefined || add === true
              ? ANY
              : compile(add, `${where}/additionalProperties`);
        return {
          kind: "object",
          props: names.map((name) => ({
            name,
            key: bytesOf(JSON.stringify(name)).slice(1),
            node: compile(props[name], `${where}/properties/${name}`),
            required: required.includes(name),
          })),
          extra,
        };
      }
    }
  }

  if (!isObj(schema) && schema !== true) throw new SchemaError("json_schema.schema must be a JSON schema object");
  const grammar = new Grammar(compile(schema, "#"));
  if (grammar.minValue(grammar.root) === null)
    throw new SchemaError("#: the schema has no finite instance (every branch recurses forever)");
  return grammar;
}

// ---- parse states ---------------------------------------------------------------------------------

type NumPhase = "sign" | "zero" | "int" | "dot" | "frac" | "e" | "esign" | "exp";
type Frame =
  | { k: "root"; done: boolean }
  | { k: "value"; node: Node; space: boolean }
  | {
      k: "obj";
      node: ObjectNode;
      ph: "open" | "key" | "colon" | "value" | "after" | "comma";
      idx: number;
      cands: number[];
      pos: number;
      sp: boolean;
    }
  | { k: "free"; node: ObjectNode; ph: "open" | "key" | "colon" | "value" | "after" | "comma"; sp: boolean }
  | { k: "arr"; node: ArrayNode; ph: "open" | "value" | "after" | "comma"; n: number; sp: boolean }
  | { k: "str"; min: number; max: number; len: number; esc: number; cont: number; lo: number; hi: number }
  | { k: "num"; integer: boolean; ph: NumPhase; digits: number }
  | { k: "lit"; values: string[]; pos: number };

/** A parse state: the innermost open value's frame, then the frames around it. Never mutated. */
export interface Stack {
  readonly f: Frame;
  readonly up: Stack | null;
}

/** Feeding END asks whether the text may stop here. */
export const END = -1;
const MAX_INT_DIGITS = 15;
const MAX_FRAC_DIGITS = 15;
const MAX_EXP_DIGITS = 2;
const PAD = "a"; // what the shortest completion writes to reach a string's minLength
const CONT = "\xbf"; // and to finish a UTF-8 character

const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
const ch = (c: string) => c.charCodeAt(0);

export class Grammar {
  private readonly minValues = new Map<Node, string | null>();
  private readonly parentsText = new WeakMap<Stack, string>();

  constructor(readonly root: Node) {}

  start(): Stack {
    return { f: { k: "value", node: this.root, space: false }, up: { f: { k: "root", done: false }, up: null } };
  }

  /** The states after byte b (0-255, or END); empty when b cannot come next. */
  feed(s: Stack, b: number): Stack[] {
    const f = s.f;
    const up = s.up;
    const put = (g: Frame): Stack[] => [{ f: g, up }];
    const push = (g: Frame, child: Frame): Stack[] => [{ f: child, up: { f: g, up } }];
    switch (f.k) {
      case "root":
        return f.done && b === END ? [s] : [];
      case "value":
        if (b === ch(" ") && f.space) return put({ ...f, space: false });
        return this.startValue(f.node, b).map((g) => ({ f: g, up }));
      case "obj": {
        const { node } = f;
        switch (f.ph) {
          case "open":
          case "after":
            if (b === ch("}") && !this.requiredFrom(node, f.idx)) return this.pop(s);
            if (f.ph === "open" && b === ch('"')) return this.keyStart(s, f);
            if (f.ph === "after" && b === ch(",") && this.candidates(node, f.idx).length) return put({ ...f, ph: "comma", sp: false });
            return [];
          case "comma":
            if (b === ch(" ") && !f.sp) return put({ ...f, sp: true });
            return b === ch('"') ? this.keyStart(s, f) : [];
          case "key": {
            const done = f.cands.find(
              (c) => (node.props[c] as Prop).key.length === f.pos + 1 && (node.props[c] as Prop).key.charCodeAt(f.pos) === b,
            );
            if (done !== undefined) return put({ ...f, ph: "colon", cands: [done] });
            const cands = f.cands.filter((c) => (node.props[c] as Prop).key.charCodeAt(f.pos) === b);
            return cands.length ? put({ ...f, cands, pos: f.pos + 1 }) : [];
          }
          case "colon": {
            const prop = node.props[f.cands[0] as number] as Prop;
            return b === ch(":") ? push({ ...f, ph: "value" }, { k: "value", node: prop.node, space: true }) : [];
          }
          default:
            return [];
        }
      }
      case "free":
        switch (f.ph) {
          case "open":
          case "after":
            if (b === ch("}")) return this.pop(s);
            if (f.ph === "open" && b === ch('"')) return push({ ...f, ph: "key" }, this.str(0, Number.POSITIVE_INFINITY));
            if (f.ph === "after" && b === ch(",")) return put({ ...f, ph: "comma", sp: false });
            return [];
          case "comma":
            if (b === ch(" ") && !f.sp) return put({ ...f, sp: true });
            return b === ch('"') ? push({ ...f, ph: "key" }, this.str(0, Number.POSITIVE_INFINITY)) : [];
          case "colon":
            return b === ch(":") ? push({ ...f, ph: "value" }, { k: "value", node: f.node.extra as Node, space: true }) : [];
          default:
            return [];
        }
      case "arr":
        switch (f.ph) {
          case "open":
            if (b === ch("]")) return f.node.min === 0 ? this.pop(s) : [];
            return f.node.max > 0
              ? this.feed({ f: { k: "value", node: f.node.items, space: false }, up: { f: { ...f, ph: "value" }, up } }, b)
              : [];
          case "after":
            if (b === ch("]")) return f.n >= f.node.min ? this.pop(s) : [];
            return b === ch(",") && f.n < f.node.max ? put({ ...f, ph: "comma", sp: false }) : [];
          case "comma":
            if (b === ch(" ") && !f.sp) return put({ ...f, sp: true });
            return this.feed({ f: { k: "value", node: f.node.items, space: false }, up: { f: { ...f, ph: "value" }, up } }, b);
          default:
            return [];
        }
      case "str":
        return this.feedString(s, f, b);
      case "num":
        return this.feedNumber(s, f, b);
      case "lit": {
        const out: Stack[] = [];
        const values = f.values.filter((v) => v.length > f.pos && v.charCodeAt(f.pos) === b);
        if (values.length) out.push({ f: { k: "lit", values, pos: f.pos + 1 }, up });
        if (f.values.some((v) => v.length === f.pos)) out.push(...this.feed(this.popOne(s), b));
        return out;
      }
    }
  }

  /** Whether the text may end in state s. */
  canEnd(s: Stack): boolean {
    return this.feed(s, END).length > 0;
  }

  /** The shortest byte string that completes the JSON text from state s. */
  finish(s: Stack): string {
    let parents = this.parentsText.get(s.up as Stack);
    if (parents === undefined) {
      parents = "";
      for (let u = s.up; u; u = u.up) {
        const memo = this.parentsText.get(u);
        if (memo !== undefined) {
          parents += memo;
          break;
        }
        parents += this.topFinish(this.childDone(u.f));
      }
      if (s.up) this.parentsText.set(s.up, parents);
    }
    return this.topFinish(s.f) + parents;
  }

  /** The shortest JSON text of a node, or null when it has none (endless recursion). */
  minValue(n: Node): string | null {
    if (this.minValues.has(n)) return this.minValues.get(n) as string | null;
    this.minValues.set(n, null); // in progress: a branch that comes back here is endless
    let v: string | null;
    switch (n.kind) {
      case "literal":
        v = n.values.reduce((a, b) => (b.length < a.length ? b : a));
        break;
      case "number":
        v = "0";
        break;
      case "string":
        v = `"${PAD.repeat(n.min)}"`;
        break;
      case "array": {
        const item = n.min > 0 ? this.minValue(n.items) : "";
        v = item === null ? null : `[${Array(n.min).fill(item).join(",")}]`;
        break;
      }
      case "object": {
        const parts = n.props.filter((p) => p.required).map((p) => [p, this.minValue(p.node)] as const);
        v = parts.some(([, x]) => x === null) ? null : `{${parts.map(([p, x]) => `"${p.key}:${x}`).join(",")}}`;
        break;
      }
      case "union": {
        const all = n.options.map((o) => this.minValue(o)).filter((x): x is string => x !== null);
        v = all.length ? all.reduce((a, b) => (b.length < a.length ? b : a)) : null;
        break;
      }
    }
    this.minValues.set(n, v);
    return v;
  }

  // -- helpers --

  private str(min: number, max: number): Frame {
    return { k: "str", min, max, len: 0, esc: 0, cont: 0, lo: 0x80, hi: 0xbf };
  }

  /** The frames a value of `node` can open with byte b. */
  private startValue(node: Node, b: number): Frame[] {
    switch (node.kind) {
      case "union":
        return node.options.flatMap((o) => this.startValue(o, b));
      case "object":
        if (b !== ch("{")) return [];
        return [
          node.extra ? { k: "free", node, ph: "open", sp: false } : { k: "obj", node, ph: "open", idx: 0, cands: [], pos: 0, sp: false },
        ];
      case "array":
        return b === ch("[") ? [{ k: "arr", node, ph: "open", n: 0, sp: false }] : [];
      case "string":
        return b === ch('"') ? [this.str(node.min, node.max)] : [];
      case "number":
        if (b === ch("-")) return [{ k: "num", integer: node.integer, ph: "sign", digits: 0 }];
        if (b === ch("0")) return [{ k: "num", integer: node.integer, ph: "zero", digits: 1 }];
        return isDigit(b) ? [{ k: "num", integer: node.integer, ph: "int", digits: 1 }] : [];
      case "literal": {
        const values = node.values.filter((v) => v.charCodeAt(0) === b);
        return values.length ? [{ k: "lit", values, pos: 1 }] : [];
      }
    }
  }

  private feedString(s: Stack, f: Extract<Frame, { k: "str" }>, b: number): Stack[] {
    const put = (g: Frame): Stack[] => [{ f: g, up: s.up }];
    if (b === END) return [];
    if (f.cont > 0) return b >= f.lo && b <= f.hi ? put({ ...f, cont: f.cont - 1, lo: 0x80, hi: 0xbf }) : [];
    if (f.esc === 1) {
      if (b === ch("u")) return put({ ...f, esc: 2 });
      return '"\\/bfnrt'.includes(String.fromCharCode(b)) ? put({ ...f, esc: 0 }) : [];
    }
    if (f.esc >= 2) return isHex(b) ? put({ ...f, esc: f.esc === 5 ? 0 : f.esc + 1 }) : [];
    if (b === ch('"')) return f.len >= f.min ? this.pop(s) : [];
    if (f.len + 1 > f.max || b < 0x20) return [];
    if (b === ch("\\")) return put({ ...f, esc: 1, len: f.len + 1 });
    if (b < 0x80) return put({ ...f, len: f.len + 1 });
    // UTF-8: a lead byte opens a character of 2, 3 or 4 bytes, which counts once toward the length.
    // Only well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF),
    // so the text decodes to exactly the characters counted.
    const cont = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : 0;
    if (!cont) return [];
    const [lo, hi] =
      b === 0xe0 ? [0xa0, 0xbf] : b === 0xed ? [0x80, 0x9f] : b === 0xf0 ? [0x90, 0xbf] : b === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
    return put({ ...f, len: f.len + 1, cont, lo, hi });
  }

  private feedNumber(s: Stack, f: Extract<Frame, { k: "num" }>, b: number): Stack[] {
    const go = (ph: NumPhase, digits: number): Stack[] => [{ f: { ...f, ph, digits }, up: s.up }];
    const d = isDigit(b);
    const frac = !f.integer && b === ch(".");
    const exp = !f.integer && (b === ch("e") || b === ch("E"));
    switch (f.ph) {
      case "sign":
        return b === ch("0") ? go("zero", 1) : d ? go("int", 1) : [];
      case "dot":
        return d ? go("frac", 1) : [];
      case "e":
        return b === ch("+") || b === ch("-") ? go("esign", 0) : d ? go("exp", 1) : [];
      case "esign":
        return d ? go("exp", 1) : [];
      case "zero":
        if (frac) return go("dot", 0);
        if (exp) return go("e", 0);
        break;
      case "int":
        if (d) return f.digits < MAX_INT_DIGITS ? go("int", f.digits + 1) : [];
        if (frac) return go("dot", 0);
        if (exp) return go("e", 0);
        break;
      case "frac":
        if (d) return f.digits < MAX_FRAC_DIGITS ? go("frac", f.digits + 1) : [];
        if (exp) return go("e", 0);
        break;
      case "exp":
        if (d) return f.digits < MAX_EXP_DIGITS ? go("exp", f.digits + 1) : [];
        break;
    }
    if (d) return []; // a digit after a leading zero
    // The number is complete: the byte belongs to what follows it.
    return this.feed(this.popOne(s), b);
  }

  /** After the opening quote of a key: the properties that may come next are the candidates. */
  private keyStart(s: Stack, f: Extract<Frame, { k: "obj" }>): Stack[] {
    const cands = this.candidates(f.node, f.idx);
    return cands.length ? [{ f: { ...f, ph: "key", cands, pos: 0 }, up: s.up }] : [];
  }

  private candidates(node: ObjectNode, idx: number): number[] {
    const out: number[] = [];
    for (let j = idx; j < node.props.length; j++) {
      out.push(j);
      if ((node.props[j] as Prop).required) break;
    }
    return out;
  }

  private requiredFrom(node: ObjectNode, idx: number): boolean {
    return node.props.slice(idx).some((p) => p.required);
  }

  /** The parent's frame once its open child is complete. */
  private childDone(f: Frame): Frame {
    switch (f.k) {
      case "root":
        return { k: "root", done: true };
      case "obj":
        return { ...f, ph: "after", idx: (f.cands[0] as number) + 1, cands: [], pos: 0 };
      case "free":
        return { ...f, ph: f.ph === "key" ? "colon" : "after" };
      case "arr":
        return { ...f, ph: "after", n: f.n + 1 };
      default:
        throw new Error(`json-schema: a ${f.k} frame has no children`);
    }
  }

  private popOne(s: Stack): Stack {
    const up = s.up as Stack;
    return { f: this.childDone(up.f), up: up.up };
  }

  private pop(s: Stack): Stack[] {
    return [this.popOne(s)];
  }

  /** The shortest bytes that complete the top frame's value (its parents not included). */
  private topFinish(f: Frame): string {
    const v = (n: Node) => this.minValue(n) as string;
    const restAfter = (node: ObjectNode, idx: number) =>
      `${node.props
        .slice(idx)
        .filter((p) => p.required)
        .map((p) => `,"${p.key}:${v(p.node)}`)
        .join("")}}`;
    const viaProp = (node: ObjectNode, cands: number[], skip: number) =>
      cands
        .map((c) => {
          const p = node.props[c] as Prop;
          return `${p.key.slice(skip)}:${v(p.node)}${restAfter(node, c + 1)}`;
        })
        .reduce((a, b) => (b.length < a.length ? b : a));
    switch (f.k) {
      case "root":
        return "";
      case "value":
        return v(f.node);
      case "obj":
        switch (f.ph) {
          case "open":
            return this.requiredFrom(f.node, f.idx) ? `"${viaProp(f.node, this.candidates(f.node, f.idx), 0)}` : "}";
          case "key":
            return viaProp(f.node, f.cands, f.pos);
          case "colon": {
            const c = f.cands[0] as number;
            return `:${v((f.node.props[c] as Prop).node)}${restAfter(f.node, c + 1)}`;
          }
          case "after":
            return restAfter(f.node, f.idx);
          case "comma":
            return `"${viaProp(f.node, this.candidates(f.node, f.idx), 0)}`;
          default:
            return ""; // "value": the open child's completion and childDone cover it
        }
      case "free": {
        const value = v(f.node.extra as Node);
        return { open: "}", after: "}", value: "", key: "", colon: `:${value}}`, comma: `"":${value}}` }[f.ph];
      }
      case "arr": {
        const item = f.node.min > 0 ? v(f.node.items) : "";
        const more = (k: number) => `,${item}`.repeat(Math.max(0, k));
        switch (f.ph) {
          case "open":
            return f.node.min === 0 ? "]" : `${item}${more(f.node.min - 1)}]`;
          case "after":
            return `${more(f.node.min - f.n)}]`;
          case "comma":
            return `${v(f.node.items)}${more(f.node.min - f.n - 1)}]`;
          default:
            return "";
        }
      }
      case "str": {
        const esc = f.esc === 1 ? "n" : f.esc >= 2 ? "0".repeat(6 - f.esc) : "";
        // The rest of a UTF-8 character: the highest byte its next position allows, then 0xbf.
        const cont = f.cont ? String.fromCharCode(f.hi) + CONT.repeat(f.cont - 1) : "";
        return `${esc}${cont}${PAD.repeat(Math.max(0, f.min - f.len))}"`;
      }
      case "num":
        return f.ph === "sign" || f.ph === "dot" || f.ph === "e" || f.ph === "esign" ? "0" : "";
      case "lit":
        return f.values.map((x) => x.slice(f.pos)).reduce((a, b) => (b.length < a.length ? b : a));
    }
  }
}

// ---- tokens -----------------------------------------------------------------------------------------

interface TrieNode {
  next: Map<number, TrieNode>;
  /** Tokens whose bytes end here. */
  ids: number[];
}

/** Whole UTF-8 characters with no quote, backslash or control byte: the number of characters, or -1. */
function plainChars(t: string): number {
  let chars = 0;
  for (let i = 0; i < t.length; ) {
    const b = t.charCodeAt(i);
    if (b < 0x20 || b === 0x22 || b === 0x5c) return -1;
    const n = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (n === 0 || i + n > t.length) return -1;
    const lo = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
    const hi = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf;
    for (let k = 1; k < n; k++) {
      const c = t.charCodeAt(i + k);
      if (c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return -1;
    }
    i += n;
    chars++;
  }
  return chars;
}

/**
 * The vocabulary's byte strings in a trie (special tokens left out), built once per tokenizer. Tokens
 * that are plain text (whole characters, no quote, backslash or control byte) are also listed apart:
 * inside a JSON string every one of them is allowed, so a large vocabulary is not walked byte by byte
 * there; the trie `rest` holds the others.
 */
export class TokenTrie {
  readonly root: TrieNode = { next: new Map(), ids: [] };
  readonly rest: TrieNode = { next: new Map(), ids: [] };
  /** Plain-text tokens and their lengths in characters. */
  readonly plain: number[] = [];
  readonly plainLength: number[] = [];
  constructor(readonly bytes: readonly (string | null)[]) {
    const insert = (root: TrieNode, t: string, id: number) => {
      let node = root;
      for (let i = 0; i < t.length; i++) {
        const b = t.charCodeAt(i);
        let child = node.next.get(b);
        if (!child) {
          child = { next: new Map(), ids: [] };
          node.next.set(b, child);
        }
        node = child;
      }
      node.ids.push(id);
    };
    bytes.forEach((t, id) => {
      if (!t) return;
      insert(this.root, t, id);
      const chars = plainChars(t);
      if (chars > 0) {
        this.plain.push(id);
        this.plainLength.push(chars);
      } else insert(this.rest, t, id);
    });
  }
}

/** Each token's bytes as a byte string (null for special tokens): a byte-level BPE's own bytes, else
 *  the UTF-8 of its text. */
export function vocabBytes(tokenizer: {
  vocabSize: number;
  specialTokens: ReadonlyMap<string, number>;
  decode(ids: ArrayLike<number>): string;
  decodeBytes?: (ids: ArrayLike<number>) => Uint8Array;
}): (string | null)[] {
  const special = new Set(tokenizer.specialTokens.values());
  return Array.from({ length: tokenizer.vocabSize }, (_, id) => {
    if (special.has(id)) return null;
    const bytes = tokenizer.decodeBytes ? tokenizer.decodeBytes([id]) : utf8.encode(tokenizer.decode([id]));
    return bytes.length ? String.fromCharCode(...bytes) : null;
  });
}

/** One sequence's constraint: where its JSON text stands, and which tokens may come next. */
export class JsonConstraint {
  private states: Stack[];
  constructor(
    readonly grammar: Grammar,
    readonly trie: TokenTrie,
  ) {
    this.states = [grammar.start()];
  }

  /** The text so far is a whole JSON value (an end-of-text token may come now). */
  canEnd(): boolean {
    return this.states.some((s) => this.grammar.canEnd(s));
  }

  /** The text so far is complete and nothing can follow it. */
  complete(): boolean {
    return this.canEnd() && this.states.every((s) => s.f.k === "root");
  }

  /** The shortest bytes that complete the text. */
  finish(): string {
    return this.states.map((s) => this.grammar.finish(s)).reduce((a, b) => (b.length < a.length ? b : a));
  }

  /**
   * Mark in `mask` (1 = allowed) the tokens that keep the text a valid prefix and leave a completion
   * of at most remaining - 1 bytes after them, so that single-byte tokens can always finish it within
   * `remaining` tokens in all. Returns how many tokens are allowed (end tokens not counted).
   */
  allowed(mask: Uint8Array, remaining: number): number {
    mask.fill(0);
    let n = 0;
    const g = this.grammar;
    const only = this.states.length === 1 ? (this.states[0] as Stack) : null;
    const f = only?.f;
    if (only && f?.k === "str" && f.esc === 0 && f.cont === 0 && g.finish(only).length <= remaining - 1) {
      // Inside a string: plain-text tokens continue it (within maxLength) and never lengthen the
      // shortest completion, so they are all allowed at once; only the others are walked.
      const { plain, plainLength } = this.trie;
      for (let i = 0; i < plain.length; i++) {
        if (f.len + (plainLength[i] as number) <= f.max) {
          mask[plain[i] as number] = 1;
          n++;
        }
      }
      return n + this.walk(this.trie.rest, mask, remaining);
    }
    return this.walk(this.trie.root, mask, remaining);
  }

  /** Mark the tokens under `root` that keep the text valid within the budget; returns how many. */
  private walk(root: TrieNode, mask: Uint8Array, remaining: number): number {
    let n = 0;
    const g = this.grammar;
    const visit = (node: TrieNode, states: Stack[]) => {
      for (const [b, child] of node.next) {
        const next = states.flatMap((s) => g.feed(s, b));
        if (next.length === 0) continue;
        if (child.ids.length && next.some((s) => g.finish(s).length <= remaining - 1)) {
          for (const id of child.ids) mask[id] = 1;
          n += child.ids.length;
        }
        visit(child, next);
      }
    };
    visit(root, this.states);
    return n;
  }

  /** Feed the bytes of the chosen token. */
  advance(id: number): void {
    const bytes = this.trie.bytes[id];
    if (!bytes) throw new Error(`JsonConstraint: token ${id} has no bytes (a special token) and cannot be part of the JSON`);
    let states = this.states;
    for (let i = 0; i < bytes.length && states.length; i++) {
      const b = bytes.charCodeAt(i);
      states = states.flatMap((s) => this.grammar.feed(s, b));
    }
    if (states.length === 0) throw new Error(`JsonConstraint: token ${id} (${JSON.stringify(bytes)}) does not continue the JSON`);
    this.states = states;
  }
}
