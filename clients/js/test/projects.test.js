// Project streams over the client against a real taskstream server, on SQLite and on
// PostgreSQL: two members see a project's events in the same order, each once; membership
// starts and stops a stream live on an open socket; crashes and restarts lose and repeat
// nothing in any stream; `reset` and gaps are handled per stream. Every frame either way is
// checked against protocol/schemas.

import assert from 'node:assert/strict';

import { projectStream } from '../src/index.js';
import { caughtUp, collect, live, perBackend, quick, range, recordingWebSocket, settled, until } from '../support/harness.js';
import { checkFrames } from '../support/schema.js';

/** Olga (owner) and Bob (editor, verified address, invited and accepted) in one project. */
async function team(server, name = 'Board') {
  const olga = await server.signup('Olga');
  const bob = await server.signupVerified('Bob');
  const project = await olga.createProject({ name });
  await join(olga, bob, project);
  return { olga, bob, project, stream: projectStream(project.id) };
}

/** `owner` invites `member` to `project`, who accepts. */
async function join(owner, member, project, role = 'editor') {
  const invitation = await owner.invite(project.id, { email: member.credentials.email, role });
  return member.acceptInvitation(invitation.id);
}

/** The project stream's latest seq, from REST. */
const projectSeq = async (api, project) => (await api.getProject(project.id)).last_seq;

/** Resolves once the socket has given the app everything of the project up to its latest seq. */
async function projectCaughtUp(socket, api, project) {
  const last = await projectSeq(api, project);
  await until(socket, 'status', () => socket.status.positions[projectStream(project.id)] === last);
  return last;
}

const ofStream = (events, stream) => events.filter((e) => e.stream === stream);
const ownEvents = (events) => events.filter((e) => e.stream === undefined);
const serverMessages = (record) => record.frames.filter((f) => f.direction === 'server').map((f) => JSON.parse(f.text));
const clientMessages = (record) => record.frames.filter((f) => f.direction === 'client').map((f) => JSON.parse(f.text));

perBackend('two members of a project: its events reach both in one order, each once', async ({ start, own }) => {
  const server = await start();
  const { olga, bob, project, stream } = await team(server);
  const sockets = [];
  for (const api of [olga, bob]) {
    const { WebSocket, record } = recordingWebSocket();
    const reloads = [];
    const socket = own(api.connect({ WebSocket, projects: true, reload: (request) => reloads.push(request), ...quick }));
    const events = collect(socket);
    await settled(socket);
    sockets.push({ api, socket, events, record, reloads });
  }
  const first = await projectSeq(olga, project);
  for (const { socket, reloads } of sockets) {
    assert.equal(socket.positions[stream], first);
    assert.deepEqual(reloads.map((r) => [r.stream, r.reason]), [['user', 'initial'], [stream, 'initial']]);
    assert.deepEqual(socket.streams.map((s) => s.stream), [stream]);
  }
  assert.equal(sockets[0].socket.streams[0].role, 'owner');
  assert.equal(sockets[1].socket.streams[0].role, 'editor');

  // Both write at once, each a run of changes to their own tasks.
  const work = async (api, who) => {
    for (let i = 0; i < 5; i += 1) {
      const task = await api.createTask({ title: `${who} ${i}`, project_id: project.id });
      if (i % 2 === 0) await api.completeTask(task.id, true);
    }
  };
  await Promise.all([work(olga, 'olga'), work(bob, 'bob')]);
  const last = await projectSeq(olga, project);
  const seen = [];
  for (const { socket, events, api, record } of sockets) {
    await projectCaughtUp(socket, api, project);
    const mine = ofStream(events, stream);
    assert.deepEqual(mine.map((e) => e.seq), range(first + 1, last), 'every seq once, in order');
    seen.push(mine.map((e) => `${e.seq} ${e.event} ${e.data.id}`));
    assert.ok(ownEvents(events).every((e) => !e.event.startsWith('task.')), 'project tasks are not in the own stream');
    socket.close();
    assert.deepEqual(checkFrames(record.frames), []);
  }
  assert.deepEqual(seen[0], seen[1], 'the same order on both');
  assert.equal(seen[0].filter((e) => e.includes('task.created')).length, 10);
});

perBackend('membership is live: added, the socket starts receiving the project; removed, it stops', async ({ start, own }) => {
  const server = await start();
  const olga = await server.signup('Olga');
  const bob = await server.signupVerified('Bob');
  const project = await olga.createProject({ name: 'Launch' });
  const stream = projectStream(project.id);
  const { WebSocket, record } = recordingWebSocket();
  const log = [];
  const reload = async (request) => {
    log.push(['reload', request.stream, request.reason, request.lastSeq]);
    if (request.stream === stream) {
      // The app loads the project it joined; its events wait meanwhile.
      const tasks = await bob.listTasks({ project_id: project.id });
      log.push(['loaded', tasks.items.map((t) => t.title)]);
    }
  };
  const socket = own(bob.connect({ WebSocket, projects: true, reload, ...quick }));
  const events = collect(socket);
  socket.on('stream.added', (added) => log.push(['added', added.stream, added.reason, added.role, added.lastSeq]));
  socket.on('stream.removed', (removed) => log.push(['removed', removed.stream, removed.reason]));
  await settled(socket);
  assert.deepEqual(socket.streams, []);
  await olga.createTask({ title: 'before Bob', project_id: project.id });

  // Added while connected (an accepted invitation): project.joined in Bob's own stream.
  const joined = await join(olga, bob, project);
  await until(socket, 'status', () => socket.status.positions[stream] === joined.last_seq);
  assert.deepEqual(
    log.slice(1),
    [
      ['added', stream, 'joined', 'editor', joined.last_seq],
      ['reload', stream, 'joined', joined.last_seq],
      ['loaded', ['before Bob']],
    ],
  );
  for (let i = 0; i < 3; i += 1) await olga.createTask({ title: `while Bob is in ${i}`, project_id: project.id });
  const last = await projectCaughtUp(socket, bob, project);
  assert.deepEqual(ofStream(events, stream).map((e) => e.seq), range(joined.last_seq + 1, last));
  assert.equal(record.connections, 1, 'without reconnecting');

  // Removed: the stream ends at Bob's member.removed.
  await olga.removeMember(project.id, bob.user.id);
  await until(socket, 'stream.removed', () => socket.streams.length === 0);
  assert.deepEqual(log.at(-1), ['removed', stream, 'removed']);
  assert.equal(socket.positions[stream], undefined);
  await olga.createTask({ title: 'after Bob', project_id: project.id });
  // Olga's change is committed; Bob's next own event comes after it on his socket.
  await bob.createTask({ title: 'Bob alone' });
  await caughtUp(socket, bob);
  const received = serverMessages(record).filter((m) => m.stream === stream);
  const removal = received.findIndex((m) => m.event === 'member.removed');
  assert.ok(removal >= 0);
  assert.deepEqual(received.slice(removal + 1), [], 'nothing of the project after the removal');
  assert.equal(ofStream(events, stream).at(-1).event, 'member.removed');
  assert.ok(ownEvents(events).some((e) => e.event === 'project.left'));
  // The server agrees: the stream is not this socket's any more.
  record.current.send(JSON.stringify({ type: 'resume', stream, since: 0 }));
  await record.waitFor((f) => f.direction === 'server' && JSON.parse(f.text).code === 'UNKNOWN_STREAM');
  assert.equal(record.connections, 1);
  socket.close();
  assert.deepEqual(checkFrames(record.frames), []);
});

perBackend('a crash and a restart mid-stream, with project streams: every stream once, in order', async ({ start, own }) => {
  const server = await start();
  const { olga, bob, project, stream } = await team(server);
  const second = await olga.createProject({ name: 'Second' });
  const other = projectStream(second.id);
  const { WebSocket, record } = recordingWebSocket();
  const socket = own(bob.connect({ WebSocket, projects: true, ...quick }));
  const events = collect(socket);
  await live(socket);
  await join(olga, bob, second);
  await until(socket, 'stream.added', () => socket.streams.length === 2);
  const first = { user: socket.positions.user, [stream]: socket.positions[stream], [other]: socket.positions[other] };
  events.length = 0; // from here on

  const write = async (round) => {
    for (let i = 0; i < 4; i += 1) {
      await olga.createTask({ title: `A ${round}.${i}`, project_id: project.id });
      await bob.createTask({ title: `B ${round}.${i}`, project_id: second.id });
      await bob.createTask({ title: `own ${round}.${i}` });
    }
  };
  // Each restart comes right after the writes' answers, while their events are on their way.
  await write(1);
  await server.restart({}, 'SIGKILL');
  await write(2);
  await server.restart({}, 'SIGTERM');
  await write(3);

  const lastOwn = await caughtUp(socket, bob);
  const lastA = await projectCaughtUp(socket, bob, project);
  const lastB = await projectCaughtUp(socket, bob, second);
  assert.deepEqual(ownEvents(events).map((e) => e.seq), range(first.user + 1, lastOwn));
  assert.deepEqual(ofStream(events, stream).map((e) => e.seq), range(first[stream] + 1, lastA));
  assert.deepEqual(ofStream(events, other).map((e) => e.seq), range(first[other] + 1, lastB));
  assert.equal(ofStream(events, stream).filter((e) => e.event === 'task.created').length, 12);
  assert.equal(ofStream(events, other).filter((e) => e.event === 'task.created').length, 12);
  // Every reconnection said where it stood in each stream.
  const auths = clientMessages(record).filter((m) => m.type === 'auth');
  assert.ok(auths.length >= 3, `${auths.length} connections`);
  for (const auth of auths.slice(1)) {
    assert.equal(auth.projects, true);
    assert.deepEqual(Object.keys(auth.positions).sort(), [stream, other].sort());
  }
  socket.close();
  assert.deepEqual(checkFrames(record.frames), []);
});

perBackend('per stream: a kept position past retention resets that project only; a project left while away ends', async ({ start, own }) => {
  const server = await start();
  const { olga, bob, project, stream } = await team(server);
  const second = await olga.createProject({ name: 'Second' });
  await join(olga, bob, second);
  const other = projectStream(second.id);
  let socket = own(bob.connect({ projects: true, WebSocket: recordingWebSocket().WebSocket, ...quick }));
  await settled(socket);
  await olga.createTask({ title: 'seen', project_id: project.id });
  await projectCaughtUp(socket, bob, project);
  const kept = socket.positions;
  assert.deepEqual(Object.keys(kept).sort(), ['user', stream, other].sort());
  socket.close();

  // Away: the first project moves on; Bob leaves the second. A restart keeping one event
  // per stream prunes the rest, so the first project's kept position is past retention.
  for (let i = 0; i < 3; i += 1) await olga.createTask({ title: `missed ${i}`, project_id: project.id });
  await bob.leaveProject(second.id);
  const lastA = await projectSeq(olga, project);
  await server.restart({ EVENT_RETENTION: '0s', EVENT_RETENTION_MIN_EVENTS: '1' });
  await server.waitForLog(/old events pruned/);

  const { WebSocket, record } = recordingWebSocket();
  const log = [];
  const reload = async (request) => {
    log.push(['reload', request.stream, request.reason, request.lastSeq]);
    if (request.stream === stream) log.push(['loaded', (await bob.listTasks({ project_id: project.id })).items.length]);
  };
  socket = own(bob.connect({ WebSocket, reload, positions: kept, ...quick }));
  const events = collect(socket);
  socket.on('*', (event) => log.push(['event', event.stream ?? 'user', event.seq]));
  socket.on('stream.removed', (removed) => log.push(['removed', removed.stream, removed.reason]));
  await until(socket, 'status', () => log.some(([kind]) => kind === 'loaded') && socket.status.reloading.length === 0);
  await olga.createTask({ title: 'after the reset', project_id: project.id });
  const end = await projectCaughtUp(socket, bob, project);

  assert.equal(clientMessages(record)[0].projects, true, 'kept project positions imply projects');
  assert.deepEqual(clientMessages(record)[0].positions, { [stream]: kept[stream], [other]: kept[other] });
  assert.deepEqual(log.find(([kind]) => kind === 'removed'), ['removed', other, 'gone'], 'not in ready: left while away');
  // Bob's own stream may have been pruned past his position too (leaving wrote to it).
  const reloads = log.filter(([kind, s]) => kind === 'reload' && s !== 'user');
  assert.deepEqual(reloads, [['reload', stream, 'reset', lastA]], 'only the project past retention reloads');
  const loadedAt = log.findIndex(([kind]) => kind === 'loaded');
  assert.ok(!log.slice(0, loadedAt).some(([kind, s]) => kind === 'event' && s === stream), 'no event of it before its reload');
  assert.equal(log[loadedAt][1], 4, 'the reload saw every task until then');
  assert.deepEqual(ofStream(events, stream).map((e) => e.seq), range(lastA + 1, end));
  assert.equal(ofStream(events, other).length, 0);
  assert.equal(socket.positions[other], undefined);
  socket.close();
  assert.deepEqual(checkFrames(record.frames), []);
});

perBackend('a gap in a stream is filled by a resume of that stream, without reconnecting', async ({ start, own }) => {
  const server = await start();
  const { olga, bob, project, stream } = await team(server);
  // A transport that loses one event of the project (the server never leaves a gap on one
  // socket; this stands for a bug anywhere between).
  const { WebSocket, record } = recordingWebSocket();
  let lost = null;
  class LossyWebSocket extends WebSocket {
    set onmessage(handler) {
      super.onmessage = (message) => {
        const parsed = JSON.parse(String(message.data));
        if (lost === null && parsed.stream === stream && parsed.event === 'task.updated') {
          lost = parsed.seq;
          return;
        }
        handler(message);
      };
    }
  }
  const socket = own(bob.connect({ WebSocket: LossyWebSocket, projects: true, ...quick }));
  const events = collect(socket);
  await live(socket);
  const first = socket.positions[stream];
  const task = await olga.createTask({ title: 'one', project_id: project.id });
  await olga.updateTask(task.id, { title: 'one, renamed' });
  for (let i = 0; i < 3; i += 1) await olga.createTask({ title: `more ${i}`, project_id: project.id });
  const last = await projectCaughtUp(socket, bob, project);
  assert.ok(lost !== null, 'an event was lost on the way');
  assert.deepEqual(ofStream(events, stream).map((e) => e.seq), range(first + 1, last));
  assert.equal(ofStream(events, stream).find((e) => e.seq === lost).data.title, 'one, renamed');
  const resumes = clientMessages(record).filter((m) => m.type === 'resume');
  assert.deepEqual(resumes, [{ type: 'resume', stream, since: lost - 1 }]);
  assert.equal(record.connections, 1, 'no reconnection');
  socket.close();
  assert.deepEqual(checkFrames(record.frames), []);
});

perBackend('a client that asks for no projects sees its own stream only', async ({ start, own }) => {
  const server = await start();
  const { olga, bob, project } = await team(server);
  const { WebSocket, record } = recordingWebSocket();
  const socket = own(bob.connect({ WebSocket, ...quick }));
  const events = collect(socket);
  await live(socket);
  await olga.createTask({ title: 'theirs', project_id: project.id });
  await bob.createTask({ title: 'mine' });
  await caughtUp(socket, bob);
  assert.ok(events.every((e) => e.stream === undefined));
  assert.deepEqual(Object.keys(socket.positions), ['user']);
  const auth = clientMessages(record).find((m) => m.type === 'auth');
  assert.equal(auth.projects, undefined);
  assert.equal(serverMessages(record).find((m) => m.type === 'ready').streams, undefined);
  socket.close();
  assert.deepEqual(checkFrames(record.frames), []);
});

perBackend('presence: who is online in a project, on how many devices, kept live', async ({ start, own }) => {
  const server = await start();
  const { olga, bob, project, stream } = await team(server);
  const { WebSocket, record } = recordingWebSocket();
  const olgaSocket = own(olga.connect({ WebSocket, projects: true, ...quick }));
  const changes = [];
  olgaSocket.on('presence', (change) => changes.push(change));
  await live(olgaSocket);
  const online = (members) => until(olgaSocket, 'presence', () => JSON.stringify(olgaSocket.presence(project.id)?.members) === JSON.stringify(members));
  // In ready: Olga herself.
  await online({ [olga.user.id]: 1 });
  assert.equal(changes[0].reason, 'ready');
  assert.equal(olgaSocket.presence(stream).online, 1, 'by id or by stream');

  // Bob comes online on two devices, then goes, one after the other.
  const phone = own(bob.connect({ WebSocket: recordingWebSocket().WebSocket, projects: true, ...quick }));
  await online({ [olga.user.id]: 1, [bob.user.id]: 1 });
  assert.equal(olgaSocket.presence(project.id).online, 2);
  assert.equal(changes.at(-1).reason, 'joined');
  assert.deepEqual(changes.at(-1).changed, [{ user_id: bob.user.id, devices: 1 }]);
  const laptop = own(bob.connect({ WebSocket: recordingWebSocket().WebSocket, projects: true, ...quick }));
  await online({ [olga.user.id]: 1, [bob.user.id]: 2 });
  await until(laptop, 'presence', () => laptop.presence(project.id)?.members?.[bob.user.id] === 2);
  phone.close();
  await online({ [olga.user.id]: 1, [bob.user.id]: 1 });
  laptop.close();
  await online({ [olga.user.id]: 1 });
  assert.equal(olgaSocket.presence(project.id).online, 1);
  assert.equal(changes.at(-1).reason, 'left');

  // A project left takes its presence with it.
  const other = await olga.createProject({ name: 'To delete' });
  await until(olgaSocket, 'presence', () => olgaSocket.presence(other.id) !== null);
  await olga.deleteProject(other.id);
  await until(olgaSocket, 'stream.removed', () => olgaSocket.presence(other.id) === null);
  olgaSocket.close();
  assert.deepEqual(checkFrames(record.frames), []);
});
