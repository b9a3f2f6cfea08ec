// The client and protocol/schemas cannot drift: the generated types are current, every
// message type the server may send has a handler, and the schema checker the socket
// tests rely on does reject what the schemas forbid.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { generate, loadSchemas, OUTPUT } from '../scripts/generate-messages.js';
import { CLIENT_MESSAGE_TYPES, EVENT_NAMES, ERROR_CODES, HANDLED_MESSAGE_TYPES, SERVER_MESSAGE_TYPES } from '../src/index.js';
import { protocolSchemas, validate } from '../support/schema.js';

const types = (direction) => loadSchemas(direction).map(({ schema }) => schema.properties.type.const).sort();

test('src/messages.js is what scripts/generate-messages.js makes of protocol/schemas', () => {
  assert.equal(readFileSync(OUTPUT, 'utf8'), generate(), 'stale: run `npm run generate` in clients/js');
});

test('the client knows every message type, event name and error code of the schemas', () => {
  assert.deepEqual([...SERVER_MESSAGE_TYPES].sort(), types('server'));
  assert.deepEqual([...CLIENT_MESSAGE_TYPES].sort(), types('client'));
  assert.deepEqual([...HANDLED_MESSAGE_TYPES].sort(), types('server'), 'a server message type without a handler in src/socket.js');
  const { server } = protocolSchemas();
  assert.deepEqual(EVENT_NAMES, server.event.properties.event.enum);
  assert.deepEqual(ERROR_CODES, server.error.properties.code.enum);
});

/** The field names of the first object type in a typedef line (`{{ a: T, b?: { c: U } }}`). */
function topLevelFields(line) {
  const body = line.slice(line.indexOf('{{') + 1);
  const fields = [];
  let depth = 0;
  let quoted = false;
  let token = '';
  for (const char of body) {
    if (char === "'") quoted = !quoted;
    if (!quoted && char === '{') depth += 1;
    if (!quoted && char === '}' && (depth -= 1) === 0) break;
    if (depth !== 1 || quoted) continue;
    if (char === ',') token = '';
    else if (char === ':' && token) {
      fields.push(token.trim().replace(/\?$/, '').replace(/^\{/, '').trim());
      token = null;
    } else if (token !== null) token += char;
  }
  return fields;
}

test('every typedef of a message lists exactly the fields of its schema', () => {
  const text = readFileSync(OUTPUT, 'utf8');
  for (const direction of ['server', 'client']) {
    for (const { schema } of loadSchemas(direction)) {
      const type = schema.properties.type.const;
      const typedef = text.split('\n').find((line) => line.includes(`@typedef {{ type: '${type}',`) || line.includes(`@typedef {{ type: '${type}' }}`));
      assert.ok(typedef, `no typedef for ${type}`);
      const required = new Set(schema.required);
      for (const field of Object.keys(schema.properties)) {
        const declared = required.has(field) ? `${field}: ` : `${field}?: `;
        assert.ok(typedef.includes(declared), `${type}: the typedef lacks ${declared}`);
      }
      assert.deepEqual(new Set(topLevelFields(typedef)), new Set(Object.keys(schema.properties)), `${type}: fields differ`);
    }
  }
});

test('the schema checker rejects what the schemas forbid', () => {
  const { server, client } = protocolSchemas();
  const ready = { type: 'ready', connection_id: '0b8f6c3e-2f4a-4c1e-9a57-3d1f0e6b2a11', user_id: '7c9e6679-7425-40de-944b-e07fc1f90ae7', last_seq: 3, heartbeat_s: 25, token_expires_at: '2026-05-02T09:30:00Z' };
  assert.deepEqual(validate(server.ready, ready), []);
  assert.notDeepEqual(validate(server.ready, { ...ready, extra: 1 }), []);
  assert.notDeepEqual(validate(server.ready, { ...ready, last_seq: -1 }), []);
  assert.notDeepEqual(validate(server.ready, { ...ready, token_expires_at: 'tomorrow' }), []);
  const purged = { type: 'event', seq: 4, event: 'task.purged', at: '2026-05-01T09:32:00Z', data: { id: 17 } };
  assert.deepEqual(validate(server.event, purged), []);
  // The data schema follows the event name (the if/then clauses).
  assert.notDeepEqual(validate(server.event, { ...purged, event: 'task.created' }), []);
  assert.deepEqual(validate(client.auth, { type: 'auth', token: 't', since: 0 }), []);
  assert.notDeepEqual(validate(client.auth, { type: 'auth', token: '' }), []);
  assert.notDeepEqual(validate(client.resume, { type: 'resume' }), []);
});
