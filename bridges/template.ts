/**
 * Upstream topic and subject templates such as `gateways/{gatewayId}/{topic}/{key}`: parsed once
 * at config time (an unknown placeholder is a config error), rendered per message with the
 * upstream's own escaping, so a key holding `/` or `.` cannot add levels or tokens.
 */

/** Placeholders a template may use. `key` only when every message holds one record (no batching). */
export type TemplateField = 'gatewayId' | 'topic' | 'partition' | 'key';
export const TEMPLATE_FIELDS: readonly TemplateField[] = ['gatewayId', 'topic', 'partition', 'key'];

/** A parsed template: literal text and placeholders, alternating. */
export type Template = readonly (string | { field: TemplateField })[];

/** Parses a template; throws an Error whose message says which placeholder is wrong and what is allowed. */
export function parseTemplate(text: string, allowed: readonly TemplateField[] = TEMPLATE_FIELDS): Template {
  const parts: (string | { field: TemplateField })[] = [];
  const re = /\{([^{}]*)\}/g;
  let at = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const name = m[1] as TemplateField;
    if (!allowed.includes(name)) {
      throw new Error(`unknown placeholder {${m[1]}} in ${JSON.stringify(text)}: allowed are ${allowed.map((f) => `{${f}}`).join(', ')}`);
    }
    if (m.index > at) parts.push(text.slice(at, m.index));
    parts.push({ field: name });
    at = m.index + m[0].length;
  }
  if (at < text.length) parts.push(text.slice(at));
  if (parts.some((p) => typeof p === 'string' && /[{}]/.test(p))) throw new Error(`unbalanced braces in ${JSON.stringify(text)}`);
  return parts;
}

/** The fields a template uses. */
export function templateFields(template: Template): TemplateField[] {
  return template.flatMap((p) => (typeof p === 'string' ? [] : [p.field]));
}

/** Renders a template; `escape` makes a value safe as one level or token of the upstream's names. */
export function renderTemplate(template: Template, values: Readonly<Record<TemplateField, string>>, escape: (value: string) => string): string {
  let out = '';
  for (const p of template) out += typeof p === 'string' ? p : escape(values[p.field]);
  return out;
}

/**
 * Percent-encodes the characters `chars` (and `%` itself), so the central side can decode a value
 * with decodeURIComponent. An empty value becomes `_`, since empty MQTT levels and NATS tokens are
 * ambiguous or invalid.
 */
export function percentEscape(value: string, chars: RegExp): string {
  if (value === '') return '_';
  const hex = (c: string) => [...Buffer.from(c)].map((b) => '%' + b.toString(16).toUpperCase().padStart(2, '0')).join('');
  return value.replace(/%/g, '%25').replace(chars, hex);
}
