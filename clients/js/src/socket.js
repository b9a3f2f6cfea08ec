// The taskstream WebSocket, kept alive: first-message authentication, a position per
// stream sent on every reconnect, `reset` (the app reloads through REST), heartbeats,
// token refresh, backoff with jitter, and the close codes after which retrying is wrong.
// protocol/README.md is the contract this implements.

/** @typedef {import('./messages.js').ServerMessage} ServerMessage */
/** @typedef {import('./messages.js').EventMessage} EventMessage */
/** @typedef {import('./messages.js').ClientMessage} ClientMessage */

/**
 * The signed-in user's own stream, as positions name it (its events carry no `stream`).
 * A project's stream is `project:<id>` (see {@link projectStream}); a socket receives
 * those when it asks (`projects: true`).
 */
export const USER_STREAM = 'user';

const PROJECT_PREFIX = 'project:';

/** The name of a project's stream: `project:<id>`. @param {string} projectId */
export function projectStream(projectId) {
  return `${PROJECT_PREFIX}${projectId}`;
}

/** @param {string} stream @returns {boolean} */
function isProjectStream(stream) {
  return typeof stream === 'string' && stream.startsWith(PROJECT_PREFIX);
}

/** The project a stream name designates, or null (the user's own). @param {string} stream */
export function projectOf(stream) {
  return isProjectStream(stream) ? stream.slice(PROJECT_PREFIX.length) : null;
}

/** Close codes the server uses (protocol/README.md, "Close codes"). */
export const CLOSE = Object.freeze({
  HEARTBEAT_TIMEOUT: 1011,
  SERVER_RESTARTING: 1012,
  TOKEN_EXPIRED: 4001,
  TOKEN_REVOKED: 4003,
  SLOW_CONSUMER: 4008,
  TOO_MANY_CONNECTIONS: 4009,
  BAD_MESSAGE: 4400,
  AUTH_FAILED: 4401,
});

/** Close codes that mean "do not try again as you were": each names why the socket stops. */
const STOPPING = Object.freeze({
  [CLOSE.TOO_MANY_CONNECTIONS]: 'too-many-connections',
  [CLOSE.BAD_MESSAGE]: 'bad-message',
});
/** Close codes that condemn the token: retried only with a different one. */
const TOKEN_REFUSED = Object.freeze({
  [CLOSE.TOKEN_EXPIRED]: 'expired',
  [CLOSE.TOKEN_REVOKED]: 'revoked',
  [CLOSE.AUTH_FAILED]: 'auth-failed',
});
/** `error` codes that leave the socket open. */
const NON_FATAL_ERRORS = new Set(['REFRESH_REJECTED', 'ALREADY_AUTHENTICATED', 'RATE_LIMITED', 'UNKNOWN_STREAM']);

/**
 * @typedef {'connecting' | 'live' | 'reconnecting' | 'offline'} ConnectionState
 *   `connecting`: the first connection is being made; `live`: authenticated, events flow;
 *   `reconnecting`: the connection was lost (or an attempt failed) and another attempt is
 *   made or scheduled (`retryAt`); `offline`: stopped, no attempt will be made (`reason`).
 */

/**
 * @typedef {'closed' | 'too-many-connections' | 'bad-message' | 'expired' | 'revoked' | 'auth-failed'} OfflineReason
 *   `closed`: `close()` was called; the others name the close code (4009, 4400, 4001,
 *   4003, 4401) after which no new token was available.
 */

/**
 * @typedef {object} CloseInfo
 * @property {number} code  the close code (1006 when the connection was lost without one;
 *   the client's own closes: 1006 too, with `reason` saying why)
 * @property {string | null} error  the `code` of the `error` message the server sent first
 * @property {string} reason  the server's message, or why the client dropped the socket
 */

/**
 * @typedef {object} SocketStatus
 * @property {ConnectionState} state
 * @property {Record<string, number>} positions  per stream, the seq of the last event the app was given
 * @property {OfflineReason | null} reason  why the socket is offline
 * @property {number} attempt  connection attempts failed since the last `ready`
 * @property {number | null} retryAt  when the next attempt starts (ms since the epoch), while reconnecting
 * @property {CloseInfo | null} lastClose  how the last connection ended
 * @property {string | null} connectionId  the server's id of the live connection
 * @property {string | null} tokenExpiresAt  when the socket's token expires, while live
 * @property {string[]} reloading  streams whose state the app is reloading (their events wait)
 */

/**
 * @typedef {object} ReloadRequest
 * @property {string} stream  which stream: `user`, or `project:<id>` (load that project's
 *   tasks, members… through REST)
 * @property {number} lastSeq  the state to load is at least this seq's; events after it follow
 * @property {'initial' | 'reset' | 'joined'} reason  `initial`: no position was known;
 *   `reset`: what was missed is past the server's retention (or, in a project, from before
 *   the user joined); `joined`: the user just joined the project
 */

/**
 * @typedef {'owner' | 'editor' | 'viewer'} Role
 */

/**
 * A project stream the socket receives.
 * @typedef {object} StreamInfo
 * @property {string} stream  `project:<id>`
 * @property {string} projectId
 * @property {Role | null} role  the user's role, as the server last said (`ready`,
 *   `project.joined`, `member.updated`); null while only a kept position names the stream
 */

/**
 * A project stream starting (`stream.added`): from `ready` (`initial`, or `resumed` from a
 * kept position) or a live `project.joined` (`joined`).
 * @typedef {StreamInfo & { lastSeq: number, reason: 'initial' | 'resumed' | 'joined' }} StreamAdded
 */

/**
 * A project stream ending (`stream.removed`): the user `left` (`project.left`), was
 * `removed` (their `member.removed`), the project was `deleted`, or it is `gone` (not in
 * `ready` any more: they left while the socket was away).
 * @typedef {{ stream: string, projectId: string, reason: 'left' | 'removed' | 'deleted' | 'gone' }} StreamRemoved
 */

/**
 * Who is online in a project: the members with at least one open socket, and how many
 * devices each. `members` is null when the server sends counts only (large projects).
 * @typedef {object} Presence
 * @property {string} stream
 * @property {string} projectId
 * @property {number} online  how many members are online
 * @property {Record<string, number> | null} members  user id -> devices (online ones only)
 */

/**
 * A change of presence (`presence` listeners): the new state and what changed.
 * @typedef {Presence & { changed: Array<{ user_id: string, devices: number }>, reason: 'ready' | 'joined' | 'left' }} PresenceChange
 */

/**
 * @typedef {object} SocketOptions
 * @property {string} [url]  the server (`https://host`) or the socket's URL
 *   (`wss://host/api/v1/ws`); in a browser, defaults to the page's origin
 * @property {string | (() => string | null | Promise<string | null>)} token  the token, or a
 *   function returning the current one (called at every connection, so it must return the
 *   latest: the one `refreshToken` returned)
 * @property {(token: string) => Promise<string>} [refreshToken]  called on `auth.expiring`
 *   with the socket's token; returns a new token (e.g. `POST /auth/refresh`)
 * @property {(request: ReloadRequest) => unknown} [reload]  loads the state through REST
 *   (may return a promise; the stream's events wait for it, then continue after
 *   `lastSeq`); called when no position was known, and on `reset`
 * @property {Record<string, number>} [positions]  where to resume (e.g. kept in localStorage),
 *   per stream: `user`, `project:<id>` (a project position implies `projects`)
 * @property {boolean} [projects]  also receive the streams of the user's projects (each its
 *   own positions, `reset`s and reloads; started and stopped live as membership changes),
 *   and their presence
 * @property {typeof WebSocket} [WebSocket]  the constructor (node 20 has none: pass `ws`'s)
 * @property {{ initialMs?: number, maxMs?: number }} [backoff]  reconnect delays: attempt n
 *   waits a random time up to min(maxMs, initialMs * 2^n) ("full jitter"); 500 ms, 30 s
 * @property {number} [restartDelayMs]  after a 1012 (server restarting), a random delay up to
 *   this (1000 ms), so that the sockets of an instance do not all come back at once
 * @property {number} [connectTimeoutMs]  an attempt not `ready` within this is abandoned (10 s)
 * @property {number} [heartbeatMs]  idle time before a `ping`, and time to wait for its
 *   answer before reconnecting; defaults to the server's `heartbeat_s`
 */

/**
 * Where to connect: `http(s)://host[/prefix]` gets the socket's path, `ws(s)://…` is taken as is.
 * @param {string} [url]
 * @returns {string}
 */
export function socketUrl(url) {
  const base = url ?? globalThis.location?.origin;
  if (!base) throw new TypeError('taskstream: no url given, and no page origin to default to');
  const parsed = new URL(base);
  if (parsed.protocol === 'http:' || parsed.protocol === 'https:') {
    parsed.protocol = parsed.protocol === 'https:' ? 'wss:' : 'ws:';
    parsed.pathname = `${parsed.pathname.replace(/\/+$/, '')}/api/v1/ws`;
  }
  return parsed.toString();
}

/**
 * One taskstream WebSocket that stays connected until `close()`, delivering each event
 * exactly once and in order per stream.
 *
 * Listen with `on(name, fn)`: an event name (`task.created`), a family (`task.*`,
 * `notification.*`), `*` for every event (each gets the whole event message; a project's
 * carry `stream`), `status` (a {@link SocketStatus} whenever it changes), `ready` (the
 * `ready` message), `reset` ({@link ReloadRequest}), `error` (non-fatal problems: refused
 * refreshes, a listener that threw, a failed reload); with `projects`, also
 * `stream.added` ({@link StreamAdded}), `stream.removed` ({@link StreamRemoved}) and
 * `presence` ({@link PresenceChange}).
 */
export class TaskstreamSocket {
  /** @param {SocketOptions} options */
  constructor(options) {
    if (!options || (typeof options.token !== 'string' && typeof options.token !== 'function')) {
      throw new TypeError('taskstream: a token (or a function returning one) is required');
    }
    const WebSocketClass = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WebSocketClass !== 'function') {
      throw new TypeError('taskstream: no WebSocket here: pass one as the WebSocket option (node 20: the ws package)');
    }
    this._WebSocket = WebSocketClass;
    this._url = socketUrl(options.url);
    this._options = options;
    this._token = typeof options.token === 'string' ? options.token : null;
    this._backoff = { initialMs: 500, maxMs: 30_000, ...options.backoff };
    this._restartDelayMs = options.restartDelayMs ?? 1000;
    this._connectTimeoutMs = options.connectTimeoutMs ?? 10_000;

    /** @type {Map<string, Set<Function>>} */
    this._listeners = new Map();
    const positions = Object.entries(options.positions ?? {});
    /** Whether the socket asks for the user's project streams. */
    this._projects = options.projects === true || positions.some(([stream]) => isProjectStream(stream));
    /** Per stream: the last seq given to the app. */
    this._applied = new Map(positions.filter(([stream]) => stream === USER_STREAM || this._projects));
    /** Per stream: the last seq accepted (given to the app, or waiting for a reload). */
    this._received = new Map(this._applied);
    /** Per stream being reloaded: its generation and the events waiting for it. */
    this._reloads = new Map();
    /** @type {Map<string, StreamInfo & { confirmed: boolean }>} the project streams followed */
    this._streams = new Map();
    for (const [stream] of positions) {
      if (isProjectStream(stream)) this._streams.set(stream, { stream, projectId: projectOf(stream), role: null, confirmed: false });
    }
    /** @type {Map<string, { online: number, members: Map<string, number> | null }>} per project stream */
    this._presence = new Map();
    /** Per stream with a gap: the position a `resume` was sent from (its replay is coming). */
    this._resuming = new Map();
    this._userId = null;

    this._state = /** @type {ConnectionState} */ ('offline');
    this._reason = /** @type {OfflineReason | null} */ ('closed');
    this._attempt = 0;
    this._retryAt = null;
    this._lastClose = /** @type {CloseInfo | null} */ (null);
    this._ready = /** @type {import('./messages.js').ReadyMessage | null} */ (null);
    this._tokenExpiresAt = null;
    this._wasLive = false;
    this._stopped = true;

    this._ws = null; // the current socket; events of any other are stale and ignored
    this._socketToken = null; // the token the current socket runs on
    this._offeredToken = null; // sent in auth.refresh, not yet confirmed
    this._pending = null; // the connection attempt (or token wait) under way
    this._lastError = null; // the `error` message that announces the coming close
    this._refreshing = null; // the refresh under way, if any
    this._timers = { retry: null, connect: null, heartbeat: null };
    this._lastHeard = 0;
    this._pingSentAt = null;
  }

  /** Starts connecting (again, after `close()` or an offline state). Returns `this`. */
  start() {
    if (!this._stopped && this._state !== 'offline') return this;
    this._stopped = false;
    this._attempt = 0;
    this._reason = null;
    this._connect();
    return this;
  }

  /** Stops for good (until `start()`): closes the socket, cancels every retry. */
  close() {
    this._stopped = true;
    this._drop(1000);
    this._clearTimer('retry');
    this._retryAt = null;
    // Reloads under way are abandoned with their waiting events: a later start() resumes
    // from what the app was given, and the server replays (or resets) from there.
    this._reloads.clear();
    this._received = new Map(this._applied);
    this._presence.clear();
    this._setState('offline', 'closed');
  }

  /** Reconnects now, whatever the state (e.g. from offline once the user closed another tab). */
  reconnect() {
    this._drop(1000);
    this._clearTimer('retry');
    this._stopped = false;
    this._reason = null;
    this._attempt = 0;
    this._connect();
  }

  /**
   * Moves the open socket to another token of the same user (`auth.refresh`), e.g. after
   * the app refreshed or signed in again; later connections use it too.
   * @param {string} token
   */
  updateToken(token) {
    this._token = token;
    this._offerToken(token);
  }

  /** @returns {SocketStatus} */
  get status() {
    return {
      state: this._state,
      positions: this.positions,
      reason: this._state === 'offline' ? this._reason : null,
      attempt: this._attempt,
      retryAt: this._retryAt,
      lastClose: this._lastClose,
      connectionId: this._state === 'live' ? (this._ready?.connection_id ?? null) : null,
      tokenExpiresAt: this._state === 'live' ? this._tokenExpiresAt : null,
      reloading: [...this._reloads.keys()],
    };
  }

  /** Per stream, the seq of the last event given to the app: keep it to resume from later. */
  get positions() {
    return Object.fromEntries(this._applied);
  }

  /** @returns {StreamInfo[]} the project streams this socket follows */
  get streams() {
    return [...this._streams.values()].map(({ stream, projectId, role }) => ({ stream, projectId, role }));
  }

  /**
   * Who is online in a project, as the server last said (null: not known yet, or not a
   * project this socket follows).
   * @param {string} project  its id, or its stream (`project:<id>`)
   * @returns {Presence | null}
   */
  presence(project) {
    const stream = isProjectStream(project) ? project : projectStream(project);
    const presence = this._presence.get(stream);
    if (!presence) return null;
    return {
      stream,
      projectId: projectOf(stream),
      online: presence.online,
      members: presence.members ? Object.fromEntries(presence.members) : null,
    };
  }

  /**
   * @param {string} name  an event name, `family.*`, `*`, `status`, `ready`, `reset` or `error`
   * @param {(value: any) => void} listener
   * @returns {() => void} removes the listener
   */
  on(name, listener) {
    let set = this._listeners.get(name);
    if (!set) this._listeners.set(name, (set = new Set()));
    set.add(listener);
    return () => this.off(name, listener);
  }

  /** @param {string} name @param {(value: any) => void} listener */
  off(name, listener) {
    this._listeners.get(name)?.delete(listener);
  }

  // --- connecting -------------------------------------------------------------------

  async _connect() {
    this._clearTimer('retry');
    this._retryAt = null;
    this._setState(this._wasLive || this._attempt > 0 ? 'reconnecting' : 'connecting');
    const attemptOf = Symbol('attempt');
    this._pending = attemptOf;
    let token;
    try {
      token = await this._currentToken();
    } catch (error) {
      this._emit('error', error);
      token = undefined;
    }
    if (this._stopped || this._pending !== attemptOf) return;
    if (token === undefined) return this._retry({ code: 1006, error: null, reason: 'the token could not be obtained' });
    if (!token) return this._goOffline('auth-failed');

    let ws;
    try {
      ws = new this._WebSocket(this._url);
    } catch (error) {
      this._emit('error', error);
      return this._retry({ code: 1006, error: null, reason: String(error?.message ?? error) });
    }
    this._ws = ws;
    this._socketToken = token;
    this._offeredToken = null;
    this._lastError = null;
    this._ready = null;
    this._setTimer('connect', this._connectTimeoutMs, () =>
      this._lost(ws, `no ready within ${this._connectTimeoutMs} ms`),
    );
    ws.onopen = () => {
      if (ws !== this._ws) return;
      // First-message authentication works everywhere (browsers cannot set headers).
      /** @type {ClientMessage} */
      const auth = { type: 'auth', token };
      const since = this._received.get(USER_STREAM);
      if (since !== undefined) auth.since = since;
      if (this._projects) {
        // Where the app stands in each project stream (what it was given, or what waits
        // for a reload): the server replays after it, or says `reset`.
        auth.projects = true;
        const positions = [...this._received].filter(([stream]) => isProjectStream(stream));
        if (positions.length) auth.positions = Object.fromEntries(positions);
      }
      this._send(auth);
    };
    ws.onmessage = (message) => {
      if (ws === this._ws) this._onMessage(message.data);
    };
    ws.onclose = (close) => {
      if (ws === this._ws) this._onClose(close.code, close.reason);
    };
    // A failed connection is followed by a close; nothing to do here, but a listener
    // must exist (an EventEmitter-based WebSocket throws on an unheard error).
    ws.onerror = () => {};
  }

  /** The token to connect with, once a refresh under way (if any) has ended. */
  async _currentToken() {
    if (this._refreshing) await this._refreshing.catch(() => {});
    return this._latestToken();
  }

  /** The option's function says which token is current; else the latest one known. */
  async _latestToken() {
    if (typeof this._options.token === 'function') {
      const token = await this._options.token();
      if (token) this._token = token;
      return token ?? null;
    }
    return this._token;
  }

  _send(message) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  /** Forgets the current socket (its late events are ignored) and closes it. */
  _drop(code) {
    const ws = /** @type {any} */ (this._ws);
    this._ws = null;
    this._ready = null;
    this._pending = null;
    this._clearTimer('connect');
    this._clearTimer('heartbeat');
    if (!ws) return;
    try {
      // A server that went silent will not complete a closing handshake: node's ws can
      // cut the connection at once; a browser closes it in the background.
      if (code !== 1000 && typeof ws.terminate === 'function') ws.terminate();
      else ws.close(1000);
    } catch {
      // Closing a socket that never opened may throw; it is gone either way.
    }
  }

  /** The client gave up on a socket (no ready, no answer to a ping, a gap). */
  _lost(ws, reason) {
    if (ws !== this._ws) return;
    this._drop(1006);
    this._retry({ code: 1006, error: null, reason });
  }

  // --- closing ----------------------------------------------------------------------

  async _onClose(code, reason) {
    const info = {
      code,
      error: this._lastError?.code ?? null,
      reason: this._lastError?.message ?? reason ?? '',
    };
    const socketToken = this._socketToken;
    this._ws = null;
    this._ready = null;
    this._clearTimer('connect');
    this._clearTimer('heartbeat');
    if (this._stopped) return;

    if (STOPPING[code]) {
      this._lastClose = info;
      return this._goOffline(STOPPING[code]);
    }
    if (TOKEN_REFUSED[code]) {
      this._lastClose = info;
      this._setState('reconnecting');
      // Never again with the refused token (the server would refuse it the same way):
      // only with a newer one, e.g. the one a refresh under way is about to return (a
      // refresh rotates the token, which closes this very socket with 4003).
      const attemptOf = Symbol('token');
      this._pending = attemptOf;
      let next = null;
      try {
        next = await this._currentToken();
        if ((!next || next === socketToken) && code === CLOSE.TOKEN_EXPIRED && this._options.refreshToken) {
          next = await this._refresh(socketToken);
        }
      } catch (error) {
        this._emit('error', error);
        next = null;
      }
      if (this._stopped || this._pending !== attemptOf) return;
      if (!next || next === socketToken) return this._goOffline(TOKEN_REFUSED[code]);
      // At once with a new token; but a run of refused tokens (no `ready` between) backs off.
      return this._retry(info, this._attempt === 0 ? 0 : undefined);
    }
    if (code === CLOSE.SLOW_CONSUMER) return this._retry(info, 0);
    if (code === CLOSE.SERVER_RESTARTING) return this._retry(info, Math.random() * this._restartDelayMs);
    return this._retry(info);
  }

  /** Schedules the next attempt: after `delay`, or the backoff's jittered delay. */
  _retry(info, delay) {
    this._lastClose = info;
    if (this._stopped) return;
    const ceiling = Math.min(this._backoff.maxMs, this._backoff.initialMs * 2 ** this._attempt);
    const wait = delay ?? Math.random() * ceiling;
    this._attempt += 1;
    this._retryAt = Date.now() + wait;
    this._setTimer('retry', wait, () => this._connect());
    this._setState('reconnecting');
  }

  _goOffline(reason) {
    this._clearTimer('retry');
    this._retryAt = null;
    this._setState('offline', reason);
  }

  // --- messages ---------------------------------------------------------------------

  _onMessage(raw) {
    this._lastHeard = Date.now();
    this._pingSentAt = null;
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      this._emit('error', new Error('taskstream: a message that is not JSON was ignored'));
      return;
    }
    const handle = this._handlers[message?.type];
    if (handle) handle.call(this, message);
    else this._emit('error', new Error(`taskstream: a message of unknown type ${message?.type} was ignored`));
  }

  /**
   * What to do with each message the server sends, by `type`; test/messages.test.js
   * checks that every type of protocol/schemas/server has an entry.
   * @type {Record<ServerMessage['type'], (this: TaskstreamSocket, message: any) => void>}
   */
  get _handlers() {
    return HANDLERS;
  }

  _onReady(/** @type {import('./messages.js').ReadyMessage} */ ready) {
    this._clearTimer('connect');
    this._ready = ready;
    this._userId = ready.user_id;
    this._resuming.clear();
    this._tokenExpiresAt = ready.token_expires_at;
    this._attempt = 0;
    this._wasLive = true;
    this._startHeartbeat(this._options.heartbeatMs ?? ready.heartbeat_s * 1000);
    if (!this._received.has(USER_STREAM)) {
      // Starting fresh: the stream continues after ready.last_seq; the app loads the
      // state as of then (or later: events carry whole resources, applying one again is
      // harmless).
      this._received.set(USER_STREAM, ready.last_seq);
      if (this._options.reload) this._reload(USER_STREAM, ready.last_seq, 'initial');
      else this._applied.set(USER_STREAM, ready.last_seq);
    }
    if (this._projects && Array.isArray(ready.streams)) this._syncStreams(ready.streams);
    this._setState('live');
    this._emit('ready', ready);
  }

  /**
   * `ready` lists every project stream the socket receives, where each stands and who is
   * online: streams that are new start (the app loads them), streams the app followed that
   * are not listed end (the user left them while away), the others resume from the
   * position sent (the server replays after it, or resets).
   */
  _syncStreams(entries) {
    const listed = new Map(entries.filter((entry) => isProjectStream(entry.stream)).map((entry) => [entry.stream, entry]));
    for (const stream of [...this._streams.keys()]) {
      if (!listed.has(stream)) this._stopStream(stream, 'gone');
    }
    for (const [stream, entry] of listed) {
      const known = this._streams.get(stream);
      if (known && this._received.has(stream)) {
        known.role = entry.role ?? known.role;
        if (!known.confirmed) {
          known.confirmed = true;
          this._emit('stream.added', { stream, projectId: known.projectId, role: known.role, lastSeq: this._received.get(stream), reason: 'resumed' });
        }
      } else {
        this._startStream(stream, entry.last_seq, entry.role ?? null, 'initial');
      }
      this._setPresence(stream, entry.presence, 'ready');
    }
  }

  /** Starts following a project stream after `lastSeq`; the app loads its state first. */
  _startStream(stream, lastSeq, role, reason) {
    const projectId = projectOf(stream);
    this._streams.set(stream, { stream, projectId, role, confirmed: true });
    this._received.set(stream, lastSeq);
    this._emit('stream.added', { stream, projectId, role, lastSeq, reason });
    if (this._options.reload) this._reload(stream, lastSeq, reason === 'joined' ? 'joined' : 'initial');
    else {
      this._applied.set(stream, lastSeq);
      this._emitStatus();
    }
  }

  /** Stops following a project stream: its position, reload, waiting events and presence go. */
  _stopStream(stream, reason) {
    const known = this._streams.get(stream);
    if (!known) return;
    this._streams.delete(stream);
    this._received.delete(stream);
    this._applied.delete(stream);
    this._reloads.delete(stream);
    this._resuming.delete(stream);
    this._presence.delete(stream);
    this._emit('stream.removed', { stream, projectId: known.projectId, reason });
    this._emitStatus();
  }

  /** What a delivered event changes in the streams followed (memberships, roles). */
  _afterEvent(stream, event) {
    if (!this._projects) return;
    const data = event.data ?? {};
    if (stream === USER_STREAM) {
      if (event.event === 'project.joined') {
        const joined = projectStream(data.project_id);
        // Already followed: `ready` listed it (the event is a replay), nothing to start.
        if (!this._streams.has(joined)) this._startStream(joined, data.last_seq, data.role ?? null, 'joined');
      } else if (event.event === 'project.left') {
        this._stopStream(projectStream(data.project_id), 'left');
      }
      return;
    }
    const known = this._streams.get(stream);
    if (event.event === 'member.updated' && known && data.user_id === this._userId) known.role = data.role;
  }

  /** Whether a project event is the last of its stream for this user. */
  _endOf(event) {
    if (event.event === 'project.deleted') return 'deleted';
    if (event.event === 'member.removed' && event.data?.user_id === this._userId) return 'removed';
    return null;
  }

  _onEvent(/** @type {EventMessage} */ event) {
    const stream = event.stream ?? USER_STREAM;
    // A project stream this socket does not follow (any more): nothing of it is the app's.
    if (stream !== USER_STREAM && !this._streams.has(stream)) return;
    const last = this._received.get(stream);
    if (last !== undefined && event.seq <= last) return; // a duplicate (or a replay after a resume)
    if (last !== undefined && event.seq !== last + 1) {
      this._gap(stream, last, event.seq);
      return;
    }
    this._resuming.delete(stream);
    this._received.set(stream, event.seq);
    const end = stream === USER_STREAM ? null : this._endOf(event);
    if (end) {
      // The stream's last event for this user: whatever waited for a reload is moot.
      this._reloads.delete(stream);
      this._deliver(stream, event);
      this._stopStream(stream, end);
      return;
    }
    const reload = this._reloads.get(stream);
    if (reload) reload.waiting.push(event);
    else this._deliver(stream, event);
    this._afterEvent(stream, event);
  }

  /**
   * The server never leaves a gap on one socket; should one appear, that stream is
   * replayed from the last seq received (`resume`), the events after the gap ignored until
   * the replay brings them again; without a socket to ask on, reconnecting does it.
   */
  _gap(stream, last, seq) {
    if (this._resuming.has(stream)) return; // the replay asked for is on its way
    /** @type {ClientMessage} */
    const resume = { type: 'resume', since: last };
    if (stream !== USER_STREAM) resume.stream = stream;
    if (this._send(resume)) this._resuming.set(stream, last);
    else this._lost(this._ws, `gap in stream ${stream}: seq ${seq} after ${last}`);
  }

  _onReset(/** @type {import('./messages.js').ResetMessage} */ reset) {
    const stream = reset.stream ?? USER_STREAM;
    if (stream !== USER_STREAM && !this._streams.has(stream)) return;
    this._resuming.delete(stream);
    this._received.set(stream, reset.last_seq);
    this._reload(stream, reset.last_seq, 'reset');
  }

  /** `presence.joined` / `presence.left`: who came online, or went, in a project. */
  _onPresence(message) {
    if (!this._streams.has(message.stream)) return;
    this._setPresence(message.stream, message, message.type === 'presence.left' ? 'left' : 'joined');
  }

  /**
   * Applies presence as `ready` gives it (the whole state) or a `presence.*` message (the
   * members whose device count changed, and the new count of members online).
   */
  _setPresence(stream, presence, reason) {
    if (!presence) return;
    const listed = Array.isArray(presence.members) ? presence.members : null;
    let members = null;
    if (listed) {
      const before = this._presence.get(stream)?.members;
      members = reason === 'ready' || !before ? new Map() : new Map(before);
      for (const { user_id: user, devices } of listed) {
        if (devices > 0) members.set(user, devices);
        else members.delete(user);
      }
    }
    this._presence.set(stream, { online: presence.online, members });
    this._emit('presence', { ...this.presence(stream), changed: listed ?? [], reason });
  }

  _onExpiring() {
    const token = this._socketToken;
    this._refresh(token)
      .then((fresh) => {
        if (fresh && fresh !== token) this._offerToken(fresh);
      })
      .catch((error) => this._emit('error', error));
  }

  _onRefreshed(/** @type {import('./messages.js').AuthRefreshedMessage} */ refreshed) {
    if (this._offeredToken) this._socketToken = this._offeredToken;
    this._offeredToken = null;
    this._tokenExpiresAt = refreshed.token_expires_at;
    this._emitStatus();
  }

  _onError(/** @type {import('./messages.js').ErrorMessage} */ error) {
    if (NON_FATAL_ERRORS.has(error.code)) {
      if (error.code === 'REFRESH_REJECTED') this._offeredToken = null;
      if (error.code === 'RATE_LIMITED' && this._resuming.size) {
        // A gap's replay was refused (too many resumes): a new connection fills it.
        this._lost(this._ws, 'a gap could not be replayed (resume refused)');
      }
      if (error.code === 'UNKNOWN_STREAM') {
        // A stream with a gap is no longer this socket's: the user left it.
        for (const stream of [...this._resuming.keys()]) if (stream !== USER_STREAM) this._stopStream(stream, 'gone');
      }
      this._emit('error', Object.assign(new Error(error.message), { code: error.code }));
    } else {
      this._lastError = error; // the close frame follows
    }
  }

  /** Gets a new token (once, however many ask at the same time). */
  _refresh(token) {
    if (!this._refreshing) {
      const refresh = this._options.refreshToken
        ? Promise.resolve().then(() => this._options.refreshToken(token))
        : this._latestToken(); // no refresher: perhaps the app has a newer token
      this._refreshing = refresh
        .then((fresh) => {
          if (fresh) this._token = fresh;
          return fresh;
        })
        .finally(() => {
          this._refreshing = null;
        });
    }
    return this._refreshing;
  }

  _offerToken(token) {
    if (this._ready && token !== this._socketToken && this._send({ type: 'auth.refresh', token })) {
      this._offeredToken = token;
    }
  }

  // --- delivering -------------------------------------------------------------------

  _deliver(stream, event) {
    this._applied.set(stream, event.seq);
    const delivered = event.stream || stream === USER_STREAM ? event : { ...event, stream };
    this._emit(event.event, delivered);
    this._emit(`${event.event.split('.')[0]}.*`, delivered);
    this._emit('*', delivered);
    this._emitStatus();
  }

  /** Asks the app to load `stream`'s state; its events wait until that is done. */
  _reload(stream, lastSeq, reason) {
    const previous = this._reloads.get(stream);
    const reload = { generation: (previous?.generation ?? 0) + 1, waiting: [] };
    this._reloads.set(stream, reload);
    /** @type {ReloadRequest} */
    const request = { stream, lastSeq, reason };
    this._emit('reset', request);
    this._emitStatus();
    const run = async () => {
      for (let attempt = 0; ; attempt += 1) {
        if (this._reloads.get(stream) !== reload) return; // closed, or a newer reset took over
        try {
          await this._options.reload?.(request);
          break;
        } catch (error) {
          // The app must have its state before events apply: try again, backing off.
          this._emit('error', error);
          const ceiling = Math.min(this._backoff.maxMs, this._backoff.initialMs * 2 ** attempt);
          await new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling));
        }
      }
      if (this._reloads.get(stream) !== reload) return; // a newer reset took over (or the stream ended)
      this._reloads.delete(stream);
      this._applied.set(stream, lastSeq);
      for (const event of reload.waiting) this._deliver(stream, event);
      this._emitStatus();
    };
    run();
  }

  _emit(name, value) {
    const listeners = this._listeners.get(name);
    if (!listeners?.size) {
      if (name === 'error') console.warn(value);
      return;
    }
    for (const listener of [...listeners]) {
      try {
        listener(value);
      } catch (error) {
        // An app's bug must not stop the stream (nor lose the next events).
        if (name !== 'error') this._emit('error', error);
      }
    }
  }

  /** @param {ConnectionState} state @param {OfflineReason | null} [reason] */
  _setState(state, reason = null) {
    this._state = state;
    this._reason = reason;
    this._emitStatus();
  }

  _emitStatus() {
    if (this._listeners.get('status')?.size) this._emit('status', this.status);
  }

  // --- timers -----------------------------------------------------------------------

  /**
   * Browsers cannot see the server's protocol pings, so silence is watched here: after
   * `interval` without a message, a `ping`; after another `interval` without an answer,
   * the connection is taken for dead.
   */
  _startHeartbeat(interval) {
    const ws = this._ws;
    this._lastHeard = Date.now();
    this._pingSentAt = null;
    const check = () => {
      if (ws !== this._ws) return;
      const now = Date.now();
      if (this._pingSentAt !== null && now - this._pingSentAt >= interval) {
        this._lost(ws, `no answer to a ping within ${interval} ms`);
        return;
      }
      if (this._pingSentAt === null && now - this._lastHeard >= interval) {
        this._pingSentAt = now;
        this._send({ type: 'ping' });
      }
      this._setTimer('heartbeat', Math.max(50, interval / 4), check);
    };
    this._setTimer('heartbeat', Math.max(50, interval / 4), check);
  }

  _setTimer(name, ms, fn) {
    this._clearTimer(name);
    this._timers[name] = setTimeout(fn, ms);
  }

  _clearTimer(name) {
    if (this._timers[name] !== null) clearTimeout(this._timers[name]);
    this._timers[name] = null;
  }
}

/** @type {Record<ServerMessage['type'], (this: TaskstreamSocket, message: any) => void>} */
const HANDLERS = Object.freeze({
  ready: TaskstreamSocket.prototype._onReady,
  event: TaskstreamSocket.prototype._onEvent,
  reset: TaskstreamSocket.prototype._onReset,
  pong: () => {}, // hearing it is the point (see _onMessage)
  'auth.expiring': TaskstreamSocket.prototype._onExpiring,
  'auth.refreshed': TaskstreamSocket.prototype._onRefreshed,
  error: TaskstreamSocket.prototype._onError,
  'presence.joined': TaskstreamSocket.prototype._onPresence,
  'presence.left': TaskstreamSocket.prototype._onPresence,
});

/** The server message types this client handles (test/messages.test.js compares them with the schemas). */
export const HANDLED_MESSAGE_TYPES = Object.freeze(Object.keys(HANDLERS));
