// The taskstream REST API over fetch: accounts, tasks, projects (members, invitations),
// notifications, profile, the event log; every error answer becomes an ApiError carrying
// the API's error envelope.

import { TaskstreamSocket } from './socket.js';

/** @typedef {import('./messages.js').Task} Task */
/** @typedef {import('./messages.js').Notification} Notification */
/** @typedef {import('./messages.js').Profile} Profile */
/** @typedef {import('./messages.js').EventMessage} EventMessage */
/** @typedef {import('./socket.js').Role} Role */

/**
 * @typedef {{ id: string, name: string, email: string, is_email_verified: boolean,
 *   profile_photo_url?: string | null, created_at: string, updated_at: string }} User
 * @typedef {{ token: string, token_type: 'Bearer', expires_in: number, user: User }} TokenResponse
 * @typedef {{ id: string, created_at: string, last_used_at: string, expires_at: string,
 *   user_agent: string | null, ip: string | null, current: boolean }} SessionInfo
 * @typedef {{ title: string, description?: string | null, priority?: 'LOW' | 'MEDIUM' | 'HIGH',
 *   due_date?: string | null, completed?: boolean | null, project_id?: string | null,
 *   assignee_id?: string | null }} TaskInput
 * @typedef {{ status?: 'all' | 'pending' | 'completed' | 'deleted', include_deleted?: boolean, date_from?: string,
 *   date_to?: string, priority?: 'LOW' | 'MEDIUM' | 'HIGH', q?: string, limit?: number,
 *   offset?: number, project_id?: string, assignee_id?: string }} TaskQuery
 * @typedef {{ limit?: number, offset?: number, unread_only?: boolean, sort?: 'asc' | 'desc' }} NotificationQuery
 */

// The project resources as the REST API returns them (test/api.test.js compares each
// typedef's fields with the server's OpenAPI schema of the same name; one line each).
/** @typedef {{ id: string, name: string, description: string | null, created_by: string | null, created_at: string, updated_at: string, role: Role, last_seq: number }} ProjectWithRole */
/** @typedef {{ user_id: string, name: string, role: Role, created_at: string }} ProjectMember */
/** @typedef {{ id: string, project_id: string, project_name: string, email: string, role: Role, invited_by: string | null, invited_by_name: string | null, created_at: string, expires_at: string }} Invitation */

/**
 * One page of a list, and how many match in all (`X-Total-Count`).
 * @template T
 * @typedef {{ items: T[], total: number }} Page
 */

/**
 * An error answer of the API (`{"success": false, "error": {"code", "message", "details"?}}`),
 * or a request that got no answer (`code` `NETWORK_ERROR`, `status` 0).
 */
export class ApiError extends Error {
  /**
   * @param {object} fields
   * @param {number} fields.status  the HTTP status (0: no answer)
   * @param {string} fields.code  the envelope's code (`VALIDATION_ERROR`, `RATE_LIMITED`, …)
   * @param {string} fields.message
   * @param {unknown} [fields.details]  for `VALIDATION_ERROR`, one entry per invalid field
   * @param {string | null} [fields.requestId]  the `X-Request-ID` the server logged it under
   * @param {number | null} [fields.retryAfter]  seconds, for 429 and 503
   * @param {number | null} [fields.lastSeq]  for 410 `EVENTS_EXPIRED`: where to continue after reloading
   * @param {unknown} [fields.cause]
   */
  constructor({ status, code, message, details, requestId = null, retryAfter = null, lastSeq = null, cause }) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.requestId = requestId;
    this.retryAfter = retryAfter;
    this.lastSeq = lastSeq;
  }
}

/**
 * @typedef {object} ApiOptions
 * @property {string} [baseUrl]  the server, e.g. `https://api.example.com` (a path prefix is
 *   allowed); in a browser, defaults to the page's origin
 * @property {string | null} [token]  a token kept from before (e.g. in localStorage)
 * @property {typeof fetch} [fetch]
 * @property {(token: string | null) => void} [onToken]  told each new token (sign-in,
 *   refresh) and `null` at logout: the place to persist it
 */

export class TaskstreamApi {
  /** @param {ApiOptions} [options] */
  constructor(options = {}) {
    const base = options.baseUrl ?? globalThis.location?.origin;
    if (!base) throw new TypeError('taskstream: no baseUrl given, and no page origin to default to');
    this.baseUrl = base.replace(/\/+$/, '');
    this._fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this._token = options.token ?? null;
    this._onToken = options.onToken;
    this._refreshing = null;
    /** @type {Set<TaskstreamSocket>} */
    this._sockets = new Set();
  }

  /** The current token (`null`: signed out). */
  get token() {
    return this._token;
  }

  /** @param {string | null} token */
  setToken(token) {
    if (token === this._token) return;
    this._token = token;
    this._onToken?.(token);
  }

  /**
   * One request. `query` values that are `undefined` are left out; `body` is sent as JSON
   * (or as is when it is a FormData).
   * @param {string} method
   * @param {string} path  under `/api/v1`
   * @param {{ query?: Record<string, unknown>, body?: unknown, auth?: boolean, token?: string | null }} [options]
   * @returns {Promise<{ data: any, response: Response }>}
   */
  async request(method, path, { query, body, auth = true, token = this._token } = {}) {
    const url = new URL(`${this.baseUrl}/api/v1${path}`);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
    }
    const headers = { accept: 'application/json' };
    if (auth && token) headers.authorization = `Bearer ${token}`;
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let response;
    try {
      response = await this._fetch(url, { method, headers, body: payload });
    } catch (cause) {
      throw new ApiError({ status: 0, code: 'NETWORK_ERROR', message: `${method} ${path}: no answer (${cause?.message ?? cause})`, cause });
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    if (!response.ok) throw errorOf(response, data, method, path);
    return { data, response };
  }

  // --- accounts ---------------------------------------------------------------------

  /**
   * Creates an account and signs it in (the token is kept).
   * @param {{ name: string, email: string, password: string }} account
   * @returns {Promise<TokenResponse>}
   */
  async signup(account) {
    return this._signedIn(await this.request('POST', '/auth/signup', { body: account, auth: false }));
  }

  /**
   * @param {{ email: string, password: string }} credentials
   * @returns {Promise<TokenResponse>}
   */
  async signin(credentials) {
    return this._signedIn(await this.request('POST', '/auth/signin', { body: credentials, auth: false }));
  }

  /**
   * Exchanges the token for a new one of the same session (the old one stops at once, and
   * sockets still on it close with 4003; this client's sockets reconnect with the new one).
   * Calls made while one is under way share its answer: presenting a token twice would be
   * taken for theft and end the session.
   * @returns {Promise<TokenResponse>}
   */
  refresh() {
    if (!this._refreshing) {
      this._refreshing = this.request('POST', '/auth/refresh')
        .then((answer) => this._signedIn(answer))
        .finally(() => {
          this._refreshing = null;
        });
    }
    return this._refreshing;
  }

  /** Ends this session (its sockets are closed first); forgets the token. */
  async logout() {
    this._closeSockets();
    const { data } = await this.request('POST', '/auth/logout');
    this.setToken(null);
    return data;
  }

  /** Ends every session of the user, everywhere. */
  async logoutAll() {
    this._closeSockets();
    const { data } = await this.request('POST', '/auth/logout-all');
    this.setToken(null);
    return data;
  }

  /** @returns {Promise<User>} */
  async me() {
    return (await this.request('GET', '/auth/me')).data;
  }

  /** @returns {Promise<SessionInfo[]>} the user's signed-in devices */
  async sessions() {
    return (await this.request('GET', '/auth/sessions')).data;
  }

  /** @param {string} id */
  async endSession(id) {
    await this.request('DELETE', `/auth/sessions/${encodeURIComponent(id)}`);
  }

  /** Ends every other session. @param {{ current_password: string, new_password: string }} change */
  async changePassword(change) {
    return (await this.request('PUT', '/auth/password', { body: change })).data;
  }

  _closeSockets() {
    for (const socket of this._sockets) socket.close();
    this._sockets.clear();
  }

  _signedIn({ data }) {
    this.setToken(data.token);
    return data;
  }

  // --- tasks ------------------------------------------------------------------------

  /** @param {TaskQuery} [query] @returns {Promise<Page<Task>>} */
  async listTasks(query = {}) {
    const { data, response } = await this.request('GET', '/tasks', { query });
    return { items: data, total: countHeader(response, 'x-total-count', data.length) };
  }

  /** @param {number} id @returns {Promise<Task>} */
  async getTask(id) {
    return (await this.request('GET', `/tasks/${id}`)).data;
  }

  /** @param {TaskInput} task @returns {Promise<Task>} */
  async createTask(task) {
    return (await this.request('POST', '/tasks', { body: task })).data;
  }

  /** Replaces the editable fields (`PUT`). @param {number} id @param {TaskInput} task @returns {Promise<Task>} */
  async replaceTask(id, task) {
    return (await this.request('PUT', `/tasks/${id}`, { body: task })).data;
  }

  /** Changes the given fields (`PATCH`). @param {number} id @param {Partial<TaskInput>} changes @returns {Promise<Task>} */
  async updateTask(id, changes) {
    return (await this.request('PATCH', `/tasks/${id}`, { body: changes })).data;
  }

  /**
   * Marks it completed (`true`), pending (`false`), or toggles it (no argument).
   * @param {number} id @param {boolean} [completed] @returns {Promise<Task>}
   */
  async completeTask(id, completed) {
    const body = completed === undefined ? undefined : { completed };
    return (await this.request('PATCH', `/tasks/${id}/complete`, { body })).data;
  }

  /** To the trash, or gone for good with `{ permanent: true }`. @param {number} id */
  async deleteTask(id, { permanent = false } = {}) {
    await this.request('DELETE', `/tasks/${id}`, { query: { permanent: permanent || undefined } });
  }

  /** Out of the trash. @param {number} id @returns {Promise<Task>} */
  async restoreTask(id) {
    return (await this.request('POST', `/tasks/${id}/restore`)).data;
  }

  // --- notifications ----------------------------------------------------------------

  /** @param {NotificationQuery} [query] @returns {Promise<Page<Notification> & { unread: number }>} */
  async listNotifications(query = {}) {
    const { data, response } = await this.request('GET', '/notifications', { query });
    return {
      items: data,
      total: countHeader(response, 'x-total-count', data.length),
      unread: countHeader(response, 'x-unread-count', 0),
    };
  }

  /** @param {number} id @returns {Promise<Notification>} */
  async getNotification(id) {
    return (await this.request('GET', `/notifications/${id}`)).data;
  }

  /** @param {number} id @param {boolean} [read] @returns {Promise<Notification>} */
  async markNotificationRead(id, read = true) {
    return (await this.request('PUT', `/notifications/${id}`, { body: { is_read: read } })).data;
  }

  /** @returns {Promise<{ message: string, count: number }>} */
  async markAllNotificationsRead() {
    return (await this.request('PUT', '/notifications/mark-all-read')).data;
  }

  /** @returns {Promise<number>} */
  async unreadCount() {
    return (await this.request('GET', '/notifications/unread/count')).data.count;
  }

  /** @param {number} id */
  async deleteNotification(id) {
    await this.request('DELETE', `/notifications/${id}`);
  }

  /** @param {number[]} ids  1 to 100 @returns {Promise<{ message: string, count: number, requested: number }>} */
  async deleteNotifications(ids) {
    return (await this.request('DELETE', '/notifications', { query: { notification_ids: ids.join(',') } })).data;
  }

  // --- profile ----------------------------------------------------------------------

  /** @returns {Promise<Profile>} */
  async getProfile() {
    return (await this.request('GET', '/profile')).data;
  }

  /**
   * Any subset of the editable fields; `null` clears one.
   * @param {Partial<Omit<Profile, 'id' | 'email' | 'profile_photo_url' | 'is_email_verified' | 'created_at' | 'updated_at'>>} changes
   * @returns {Promise<{ message: string, updated_fields: string[], profile: Profile }>}
   */
  async updateProfile(changes) {
    return (await this.request('PUT', '/profile', { body: changes })).data;
  }

  /**
   * @param {Blob} file  a JPEG, PNG, WebP or GIF
   * @param {string} [name]
   * @returns {Promise<{ message: string, photo_url: string, thumbnail_url: string, uploaded_at: string }>}
   */
  async uploadPhoto(file, name = 'photo') {
    const form = new FormData();
    form.append('file', file, name);
    return (await this.request('POST', '/profile/upload-photo', { body: form })).data;
  }

  async deletePhoto() {
    return (await this.request('DELETE', '/profile/photo')).data;
  }

  // --- projects ---------------------------------------------------------------------

  /** The caller's projects, each with their role and its stream's position. @returns {Promise<ProjectWithRole[]>} */
  async listProjects() {
    return (await this.request('GET', '/projects')).data;
  }

  /** @param {string} id @returns {Promise<ProjectWithRole>} */
  async getProject(id) {
    return (await this.request('GET', `/projects/${encodeURIComponent(id)}`)).data;
  }

  /** The caller becomes its owner. @param {{ name: string, description?: string | null }} project @returns {Promise<ProjectWithRole>} */
  async createProject(project) {
    return (await this.request('POST', '/projects', { body: project })).data;
  }

  /** Owners only. @param {string} id @param {{ name?: string, description?: string | null }} changes @returns {Promise<ProjectWithRole>} */
  async updateProject(id, changes) {
    return (await this.request('PATCH', `/projects/${encodeURIComponent(id)}`, { body: changes })).data;
  }

  /** Owners only; its tasks go with it. @param {string} id */
  async deleteProject(id) {
    await this.request('DELETE', `/projects/${encodeURIComponent(id)}`);
  }

  /** @param {string} projectId @returns {Promise<ProjectMember[]>} */
  async listMembers(projectId) {
    return (await this.request('GET', `/projects/${encodeURIComponent(projectId)}/members`)).data;
  }

  /** Owners only. @param {string} projectId @param {string} userId @param {Role} role @returns {Promise<ProjectMember>} */
  async setMemberRole(projectId, userId, role) {
    const path = `/projects/${encodeURIComponent(projectId)}/members/${encodeURIComponent(userId)}`;
    return (await this.request('PATCH', path, { body: { role } })).data;
  }

  /** Owners only (their stream stops at once, on every socket). @param {string} projectId @param {string} userId */
  async removeMember(projectId, userId) {
    await this.request('DELETE', `/projects/${encodeURIComponent(projectId)}/members/${encodeURIComponent(userId)}`);
  }

  /** The caller leaves (the last owner cannot). @param {string} projectId */
  async leaveProject(projectId) {
    await this.request('POST', `/projects/${encodeURIComponent(projectId)}/leave`);
  }

  /**
   * Invites an address (owners only); its owner accepts from a verified address.
   * @param {string} projectId @param {{ email: string, role?: Role }} invitation
   * @returns {Promise<Invitation>}
   */
  async invite(projectId, invitation) {
    return (await this.request('POST', `/projects/${encodeURIComponent(projectId)}/invitations`, { body: invitation })).data;
  }

  /** A project's open invitations (owners only). @param {string} projectId @returns {Promise<Invitation[]>} */
  async listProjectInvitations(projectId) {
    return (await this.request('GET', `/projects/${encodeURIComponent(projectId)}/invitations`)).data;
  }

  /** @param {string} projectId @param {string} invitationId */
  async revokeInvitation(projectId, invitationId) {
    await this.request('DELETE', `/projects/${encodeURIComponent(projectId)}/invitations/${encodeURIComponent(invitationId)}`);
  }

  /** The open invitations to the caller's address. @returns {Promise<Invitation[]>} */
  async listInvitations() {
    return (await this.request('GET', '/invitations')).data;
  }

  /** Needs a verified address (else 403). @param {string} id @returns {Promise<ProjectWithRole>} the project joined */
  async acceptInvitation(id) {
    return (await this.request('POST', `/invitations/${encodeURIComponent(id)}/accept`)).data;
  }

  /** @param {string} id */
  async declineInvitation(id) {
    await this.request('POST', `/invitations/${encodeURIComponent(id)}/decline`);
  }

  // --- e-mail verification ------------------------------------------------------------

  /** Mails the caller a new verification link. @returns {Promise<{ message: string }>} */
  async requestEmailVerification() {
    return (await this.request('POST', '/auth/verify-email/request')).data;
  }

  /**
   * What the link of the mail does (`…?token=`): verifies the address.
   * @param {string} token @returns {Promise<{ message: string, profile: Profile }>}
   */
  async verifyEmail(token) {
    return (await this.request('POST', '/auth/verify-email', { body: { token }, auth: false })).data;
  }

  // --- events -----------------------------------------------------------------------

  /**
   * The event log after `since`, for clients that poll (the socket is better): the user's
   * own, or a project's (`stream` `project:<id>`, members only). A gap past retention (or,
   * in a project, from before the user joined) throws ApiError `EVENTS_EXPIRED` with
   * `lastSeq`.
   * @param {number} since @param {number} [limit] @param {string} [stream]
   * @returns {Promise<{ events: EventMessage[], last_seq: number }>}
   */
  async events(since, limit, stream) {
    return (await this.request('GET', '/events', { query: { since, limit, stream } })).data;
  }

  // --- the socket -------------------------------------------------------------------

  /**
   * Opens the live stream with this API's token: it refreshes the token on
   * `auth.expiring` (through `refresh()`), and follows every token change.
   * @param {Omit<import('./socket.js').SocketOptions, 'token' | 'refreshToken'>} [options]
   * @returns {TaskstreamSocket} already started
   */
  connect(options = {}) {
    const socket = new TaskstreamSocket({
      url: this.baseUrl,
      ...options,
      // A refresh under way (whoever started it) will close the socket with 4003 when it
      // rotates the token: the socket waits for its answer before reconnecting.
      token: async () => {
        if (this._refreshing) await this._refreshing.catch(() => {});
        return this._token;
      },
      refreshToken: async () => (await this.refresh()).token,
    });
    this._sockets.add(socket);
    return socket.start();
  }
}

function countHeader(response, name, fallback) {
  const value = Number.parseInt(response.headers.get(name) ?? '', 10);
  return Number.isNaN(value) ? fallback : value;
}

function errorOf(response, data, method, path) {
  const envelope = data && typeof data === 'object' ? data.error : null;
  const retryAfter = Number.parseInt(response.headers.get('retry-after') ?? '', 10);
  return new ApiError({
    status: response.status,
    code: envelope?.code ?? `HTTP_${response.status}`,
    message: envelope?.message ?? `${method} ${path}: HTTP ${response.status}`,
    details: envelope?.details,
    requestId: response.headers.get('x-request-id'),
    retryAfter: Number.isNaN(retryAfter) ? null : retryAfter,
    lastSeq: typeof data?.last_seq === 'number' ? data.last_seq : null,
  });
}
