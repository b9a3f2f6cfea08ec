// A JSON Schema checker for the keywords protocol/schemas uses (no dependency for this):
// type, const, enum, properties, required, additionalProperties (false or a schema),
// propertyNames, minimum, minLength, maxLength, pattern, items, minItems, maxItems, anyOf,
// allOf, if/then and local $ref. A keyword it
// does not know makes it throw, so a schema growing past it cannot pass unchecked.

import { loadSchemas } from '../scripts/generate-messages.js';

const KNOWN = new Set([
  '$schema', '$id', '$defs', 'title', 'description', 'format', 'type', 'const', 'enum',
  'properties', 'required', 'additionalProperties', 'minimum', 'minLength', 'maxLength',
  'pattern', 'items', 'minItems', 'maxItems', 'anyOf', 'allOf', 'if', 'then', '$ref',
  'propertyNames',
]);

function typeMatches(type, value) {
  switch (type) {
    case 'null':
      return value === null;
    case 'boolean':
      return typeof value === 'boolean';
    case 'integer':
      return Number.isInteger(value);
    case 'number':
      return typeof value === 'number';
    case 'string':
      return typeof value === 'string';
    case 'array':
      return Array.isArray(value);
    case 'object':
      return value !== null && typeof value === 'object' && !Array.isArray(value);
    default:
      throw new Error(`unknown type ${type}`);
  }
}

/** The problems of `value` against `schema` (empty: valid). */
export function validate(schema, value, root = schema, path = '$') {
  const problems = [];
  const fail = (message) => problems.push(`${path}: ${message}`);
  for (const keyword of Object.keys(schema)) {
    if (!KNOWN.has(keyword)) throw new Error(`schema keyword ${keyword} is not supported by test/schema.js`);
  }
  if (schema.$ref) {
    const target = schema.$ref.replace('#/$defs/', '');
    return validate(root.$defs[target], value, root, path);
  }
  if (schema.type) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => typeMatches(t, value))) return [`${path}: expected ${types.join(' or ')}, got ${JSON.stringify(value)}`];
  }
  if ('const' in schema && value !== schema.const) fail(`expected ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.includes(value)) fail(`${JSON.stringify(value)} is not one of ${schema.enum.join(', ')}`);
  if (typeof value === 'number' && schema.minimum !== undefined && value < schema.minimum) fail(`below ${schema.minimum}`);
  if (typeof value === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) fail('too short');
    if (schema.maxLength !== undefined && value.length > schema.maxLength) fail('too long');
    if (schema.pattern && !new RegExp(schema.pattern, 'u').test(value)) fail(`does not match ${schema.pattern}`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) fail('too few items');
    if (schema.maxItems !== undefined && value.length > schema.maxItems) fail('too many items');
    if (schema.items) value.forEach((item, i) => problems.push(...validate(schema.items, item, root, `${path}[${i}]`)));
  }
  if (typeMatches('object', value)) {
    for (const name of schema.required ?? []) if (!(name in value)) fail(`missing ${name}`);
    for (const [name, item] of Object.entries(value)) {
      const property = schema.properties?.[name];
      if (property) problems.push(...validate(property, item, root, `${path}.${name}`));
      else if (schema.additionalProperties === false) fail(`unexpected field ${name}`);
      else if (typeof schema.additionalProperties === 'object') {
        problems.push(...validate(schema.additionalProperties, item, root, `${path}.${name}`));
      }
      if (schema.propertyNames) problems.push(...validate(schema.propertyNames, name, root, `${path} (name ${name})`));
    }
  }
  if (schema.anyOf && !schema.anyOf.some((s) => validate(s, value, root, path).length === 0)) fail('matches none of anyOf');
  for (const part of schema.allOf ?? []) {
    if (part.if) {
      if (validate(part.if, value, root, path).length === 0 && part.then) problems.push(...validate(part.then, value, root, path));
    } else {
      problems.push(...validate(part, value, root, path));
    }
  }
  return problems;
}

/** The schemas by direction and message type. */
export function protocolSchemas() {
  const byType = (direction) =>
    Object.fromEntries(loadSchemas(direction).map(({ schema }) => [schema.properties.type.const, schema]));
  return { server: byType('server'), client: byType('client') };
}

/**
 * Checks recorded frames (see harness.recordingWebSocket) against the schemas of their
 * direction; returns the problems, one string each.
 */
export function checkFrames(frames) {
  const schemas = protocolSchemas();
  const problems = [];
  for (const { direction, text } of frames) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      problems.push(`${direction}: not JSON: ${text.slice(0, 80)}`);
      continue;
    }
    const schema = schemas[direction][message?.type];
    if (!schema) {
      problems.push(`${direction}: no schema for type ${message?.type}`);
      continue;
    }
    for (const problem of validate(schema, message)) problems.push(`${direction} ${message.type}: ${problem}`);
  }
  return problems;
}
