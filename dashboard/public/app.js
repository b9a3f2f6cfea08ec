// The taskstream dashboard: sign-in, the user's tasks and notifications, and a board per
// project (tasks in columns by status, members and who is online, invitations), kept live
// by the socket of the JavaScript client (clients/js, served beside this file as client/),
// and the pages mails link to (/verify-email, /reset-password).
//
// Every change goes through REST and is shown when its event arrives: the state is only
// ever changed by events (and replaced by a reload), keyed by id, each event carrying the
// whole resource, so nothing is applied twice. Data from the API is inserted as text only.

import { TaskstreamApi, ApiError } from './client/api.js';
import { projectOf } from './client/socket.js';

// sessionStorage, not localStorage: each refresh rotates the token, and a rotated token
// presented again ends the whole session (it is taken for a stolen copy). Tabs sharing one
// stored token would race to refresh it; here each tab signs in to a session of its own,
// which survives reloads of the tab and is forgotten with it.
const TOKEN_KEY = 'taskstream.token';
/** The project shown (this tab's choice, kept across reloads). */
const PROJECT_KEY = 'taskstream.project';
/** Notifications listed (the unread count covers all of them). */
const NOTIFICATIONS_SHOWN = 50;
const TASK_PAGE = 500;
const UNREAD_PAGE = 100;

/** The server: this page's folder (the API may sit behind a path prefix). */
const baseUrl = new URL('.', location.href).href.replace(/\/+$/, '');
const route = location.pathname.slice(location.pathname.lastIndexOf('/') + 1);

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

const state = {
  /** @type {Map<number, import('./client/api.js').Task>} */
  tasks: new Map(),
  /** @type {Map<number, import('./client/api.js').Notification>} the newest ones */
  notifications: new Map(),
  /** Ids of every unread notification (not only those shown). */
  unread: new Set(),
  user: null,
  filter: 'open',
  loaded: false,
  /** @type {Map<string, import('./client/api.js').ProjectWithRole>} what is known of each project, by id */
  projectInfo: new Map(),
  /**
   * The projects whose stream the socket follows (it says when one starts or ends), each
   * with its tasks and members once loaded.
   * @type {Map<string, { tasks: Map<number, import('./client/api.js').Task>, members: Map<string, import('./client/api.js').ProjectMember>, membersVersion: number, loaded: boolean }>}
   */
  boards: new Map(),
  /** @type {Map<string, import('./client/socket.js').Presence>} who is online, per project */
  presence: new Map(),
  /** @type {Map<string, import('./client/api.js').Invitation>} open invitations to the user */
  invitations: new Map(),
  /** The project shown (null: the user's own tasks), and the one to show once it arrives. */
  selected: null,
  pendingSelect: null,
};

/** @type {TaskstreamApi} */
let api;
/** @type {import('./client/socket.js').TaskstreamSocket | null} */
let socket = null;

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: sign in on each visit
  }
}

function storeToken(token) {
  stored(TOKEN_KEY, token);
}

function stored(key, value) {
  try {
    if (value) sessionStorage.setItem(key, value);
    else sessionStorage.removeItem(key);
  } catch {
    // Storage disabled: it lives as long as the page.
  }
}

// --- views ----------------------------------------------------------------------------

function show(view) {
  for (const section of $$('main > .view')) section.hidden = section.id !== view;
  const signedIn = view === 'board';
  $('#account').hidden = !signedIn;
  $('#connection').hidden = !signedIn;
}

let toastTimer = null;
function toast(message) {
  const element = $('#toast');
  element.textContent = message;
  element.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (element.hidden = true), 6000);
}

/** The API's message, and one line per invalid field. */
function describe(error) {
  if (!(error instanceof ApiError)) return String(error?.message ?? error);
  if (error.code === 'NETWORK_ERROR') return 'The server cannot be reached; try again in a moment.';
  const fields = Array.isArray(error.details) ? error.details.map((d) => `${d.field}: ${d.message}`) : [];
  return fields.length > 1 ? fields.join('\n') : error.message;
}

function showError(element, error) {
  element.textContent = error ? describe(error) : '';
  element.hidden = !error;
}

/** Runs `work` with `element` marked busy (and, for a form, its buttons disabled). */
async function busy(element, work) {
  element.setAttribute('aria-busy', 'true');
  const buttons = element.matches('button') ? [element] : $$('button', element);
  for (const button of buttons) button.disabled = true;
  try {
    return await work();
  } finally {
    element.removeAttribute('aria-busy');
    for (const button of buttons) button.disabled = false;
  }
}

// --- signing in -----------------------------------------------------------------------

function makeApi(token) {
  return new TaskstreamApi({ baseUrl, token, onToken: storeToken });
}

function showAuth(notice = '') {
  leaveBoard();
  show('auth');
  const element = $('#auth .notice');
  element.textContent = notice;
  element.hidden = !notice;
  selectAuthPanel('signin');
}

function selectAuthPanel(panel) {
  for (const form of $$('#auth form')) form.hidden = form.dataset.panel !== panel;
  for (const tab of $$('#auth .tabs button')) tab.setAttribute('aria-pressed', String(tab.dataset.tab === panel));
}

function bindAuth() {
  for (const tab of $$('#auth .tabs button')) tab.addEventListener('click', () => selectAuthPanel(tab.dataset.tab));
  $('#auth .forgot-open').addEventListener('click', () => selectAuthPanel('forgot'));
  $('#auth .forgot-close').addEventListener('click', () => selectAuthPanel('signin'));

  const submit = (form, send) =>
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const fields = Object.fromEntries(new FormData(form));
      showError($('.error', form), null);
      try {
        await busy(form, () => send(fields));
      } catch (error) {
        showError($('.error', form), error);
      }
    });
  submit($('#signin'), async ({ email, password }) => {
    await api.signin({ email, password });
    $('#signin').reset();
    enterBoard();
  });
  submit($('#signup'), async ({ name, email, password }) => {
    await api.signup({ name, email, password });
    $('#signup').reset();
    enterBoard();
  });
  submit($('#forgot'), async ({ email }) => {
    const { data } = await api.request('POST', '/auth/password/forgot', { body: { email }, auth: false });
    const done = $('#forgot .done');
    done.textContent = data.message;
    done.hidden = false;
  });
}

/** The session is over (signed out elsewhere, expired, revoked): back to the sign-in form. */
function sessionEnded() {
  api.setToken(null);
  showAuth('Your session has ended: please sign in again.');
}

/**
 * Runs an authenticated call; on 401, once more with the newer token when one came (a
 * refresh rotated it meanwhile), or after refreshing the one it had. A refresh under way
 * is shared, never repeated: presenting a rotated token would end the session.
 */
async function authed(call) {
  const used = api.token;
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    if (api.token === used) {
      try {
        await api.refresh();
      } catch (refused) {
        if (refused instanceof ApiError && refused.status === 401) sessionEnded();
        throw error;
      }
    }
    return call();
  }
}

// --- the board ------------------------------------------------------------------------

function enterBoard() {
  show('board');
  state.loaded = false;
  try {
    state.pendingSelect = sessionStorage.getItem(PROJECT_KEY);
  } catch {
    state.pendingSelect = null;
  }
  render();
  socket = api.connect({ reload, projects: true });
  socket.on('task.*', onTask);
  socket.on('project.*', onProject);
  socket.on('member.*', onMember);
  socket.on('stream.added', onStreamAdded);
  socket.on('stream.removed', onStreamRemoved);
  socket.on('presence', onPresence);
  socket.on('notification.*', onNotification);
  socket.on('notifications.*', onNotificationsRead);
  socket.on('profile.*', (event) => setUser(event.data));
  socket.on('status', showStatus);
  socket.on('error', (error) => console.warn('taskstream:', error));
}

function leaveBoard() {
  socket?.close();
  socket = null;
  state.tasks.clear();
  state.notifications.clear();
  state.unread.clear();
  state.user = null;
  state.projectInfo.clear();
  state.boards.clear();
  state.presence.clear();
  state.invitations.clear();
  state.selected = null;
  state.pendingSelect = null;
  taskRows.clear();
  notificationRows.clear();
  for (const rows of [...Object.values(columnRows), projectButtons, invitationRows, memberRows]) rows.clear();
  for (const list of $$('#project-list, #invitations .list, #members')) list.replaceChildren();
  $('#tasks').replaceChildren();
  $('#notifications').replaceChildren();
  for (const list of $$('#project .column .list')) list.replaceChildren();
  closeEditor();
  document.title = 'taskstream';
}

/**
 * Loads a stream's state through REST: at start, after a `reset`, and for a project the
 * user just joined (the socket holds the stream's events after `lastSeq` meanwhile, then
 * applies them on top).
 * @param {import('./client/socket.js').ReloadRequest} request
 */
async function reload({ stream }) {
  const projectId = projectOf(stream);
  if (projectId) return reloadProject(projectId);
  const [user, tasks, notifications, unread, projects, invitations] = await authed(() =>
    Promise.all([
      api.me(),
      allTasks(),
      api.listNotifications({ limit: NOTIFICATIONS_SHOWN }),
      unreadIds(),
      api.listProjects(),
      api.listInvitations(),
    ]),
  );
  setUser(user);
  state.tasks = new Map(tasks.map((task) => [task.id, task]));
  state.notifications = new Map(notifications.items.map((n) => [n.id, n]));
  state.unread = unread;
  for (const project of projects) state.projectInfo.set(project.id, project);
  state.invitations = new Map(invitations.map((i) => [i.id, i]));
  state.loaded = true;
  render();
}

/** One project's tasks and members (its stream's events wait meanwhile). */
async function reloadProject(id) {
  const [project, tasks, members] = await authed(() =>
    Promise.all([api.getProject(id), allTasks({ project_id: id }), api.listMembers(id)]),
  );
  const board = state.boards.get(id);
  if (!board) return; // gone meanwhile
  state.projectInfo.set(id, project);
  board.tasks = new Map(tasks.map((task) => [task.id, task]));
  board.members = new Map(members.map((member) => [member.user_id, member]));
  board.membersVersion += 1;
  board.loaded = true;
  schedule();
}

async function refreshInvitations() {
  const invitations = await authed(() => api.listInvitations());
  state.invitations = new Map(invitations.map((i) => [i.id, i]));
  schedule();
}

async function allTasks(query = {}) {
  const tasks = [];
  for (;;) {
    const page = await api.listTasks({ ...query, include_deleted: true, limit: TASK_PAGE, offset: tasks.length });
    tasks.push(...page.items);
    if (page.items.length < TASK_PAGE || tasks.length >= page.total) return tasks;
  }
}

async function unreadIds() {
  const ids = new Set();
  for (let offset = 0; ; offset += UNREAD_PAGE) {
    const page = await api.listNotifications({ unread_only: true, limit: UNREAD_PAGE, offset });
    for (const n of page.items) ids.add(n.id);
    if (page.items.length < UNREAD_PAGE || offset + UNREAD_PAGE >= page.total) return ids;
  }
}

function onTask(event) {
  // A project's tasks go to its board, the user's own to their list.
  const projectId = event.stream ? projectOf(event.stream) : null;
  const tasks = projectId ? state.boards.get(projectId)?.tasks : state.tasks;
  if (!tasks) return;
  const { id } = event.data;
  if (event.event === 'task.purged') tasks.delete(id);
  else tasks.set(id, event.data);
  if (editing?.id === id) editedElsewhere(event);
  schedule();
}

/** project.joined / project.left (the user's stream), project.updated / project.deleted (the project's). */
function onProject(event) {
  const { data } = event;
  if (event.event === 'project.joined') {
    state.projectInfo.set(data.project_id, { ...data.project, role: data.role, last_seq: data.last_seq });
    // Accepted here or elsewhere: its invitations are done.
    for (const [id, invitation] of state.invitations) if (invitation.project_id === data.project_id) state.invitations.delete(id);
  } else if (event.event === 'project.updated') {
    const known = state.projectInfo.get(data.id);
    if (known) state.projectInfo.set(data.id, { ...known, ...data });
  }
  // Leaving and deletion end the project's stream: onStreamRemoved.
  schedule();
}

function onMember(event) {
  const { data } = event;
  const board = state.boards.get(data.project_id);
  if (!board) return;
  board.membersVersion += 1;
  if (event.event === 'member.removed') board.members.delete(data.user_id);
  else {
    const known = board.members.get(data.user_id);
    board.members.set(data.user_id, { user_id: data.user_id, name: data.name, role: data.role, created_at: known?.created_at ?? event.at });
    const info = state.projectInfo.get(data.project_id);
    if (info && data.user_id === state.user?.id) state.projectInfo.set(data.project_id, { ...info, role: data.role });
  }
  schedule();
}

/** The socket follows a project's stream from now on: a board for it (loaded by reload). */
function onStreamAdded({ projectId }) {
  if (!state.boards.has(projectId)) state.boards.set(projectId, { tasks: new Map(), members: new Map(), membersVersion: 0, loaded: false });
  if (state.pendingSelect === projectId) select(projectId);
  schedule();
}

const ENDINGS = {
  removed: (name) => `You were removed from ${name}.`,
  deleted: (name) => `${name} was deleted.`,
  gone: (name) => `You are no longer a member of ${name}.`,
};

/** The project's stream ended for this user (left, removed, deleted). */
function onStreamRemoved({ projectId, reason }) {
  const name = state.projectInfo.get(projectId)?.name ?? 'a project';
  state.boards.delete(projectId);
  state.presence.delete(projectId);
  state.projectInfo.delete(projectId);
  if (state.selected === projectId) {
    select(null);
    if (ENDINGS[reason]) toast(ENDINGS[reason](name));
  }
  schedule();
}

function onPresence(presence) {
  state.presence.set(presence.projectId, presence);
  schedule();
}

/** Shows a project's board (null: the user's own tasks). */
function select(projectId) {
  state.selected = projectId && state.boards.has(projectId) ? projectId : null;
  state.pendingSelect = projectId && !state.selected ? projectId : null;
  stored(PROJECT_KEY, projectId);
  if (editing) closeEditor();
  schedule();
}

function onNotification(event) {
  const notification = event.data;
  if (event.event === 'notification.created' && notification.type === 'PROJECT_INVITATION') {
    refreshInvitations().catch((error) => console.warn('taskstream:', error));
  }
  if (event.event === 'notification.deleted') {
    state.notifications.delete(notification.id);
    state.unread.delete(notification.id);
  } else {
    state.notifications.set(notification.id, notification);
    if (notification.is_read) state.unread.delete(notification.id);
    else state.unread.add(notification.id);
  }
  schedule();
}

function onNotificationsRead(event) {
  for (const id of event.data.ids) {
    state.unread.delete(id);
    const shown = state.notifications.get(id);
    if (shown && !shown.is_read) state.notifications.set(id, { ...shown, is_read: true });
  }
  schedule();
}

function setUser(user) {
  state.user = user;
  $('#account .name').textContent = user.name;
  $('#account .email').textContent = user.email;
  $('#account .verify').hidden = user.is_email_verified;
}

/** `user`, or the project's name. */
function streamLabel(stream) {
  const projectId = projectOf(stream);
  return projectId ? (state.projectInfo.get(projectId)?.name ?? 'project') : stream;
}

const STATES = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline' };
const ENDED = new Set(['revoked', 'expired', 'auth-failed']);

function showStatus(status) {
  const element = $('#connection');
  element.dataset.state = status.state;
  let label = STATES[status.state] ?? status.state;
  if (status.state === 'live' && status.reloading.length) label = 'Live, loading…';
  if (status.state === 'offline' && status.reason === 'too-many-connections') label = 'Offline: too many open tabs';
  $('.state', element).textContent = label;
  $('.positions', element).textContent = Object.entries(status.positions)
    .map(([stream, seq]) => `${streamLabel(stream)} #${seq}`)
    .join(' · ');
  const close = status.lastClose ? `last close ${status.lastClose.code}${status.lastClose.reason ? `: ${status.lastClose.reason}` : ''}` : '';
  const retry = status.retryAt ? `next attempt in ${Math.max(0, Math.round((status.retryAt - Date.now()) / 1000))} s` : '';
  element.title = [close, retry].filter(Boolean).join('; ');
  $('.reconnect', element).hidden = status.state !== 'offline' || ENDED.has(status.reason);
  if (status.state === 'offline' && ENDED.has(status.reason)) sessionEnded();
}

// --- rendering ------------------------------------------------------------------------

let scheduled = false;
/**
 * Renders once for a burst of events (a replay delivers many in a row): at the next frame,
 * or soon in any case (frames stop in hidden tabs).
 */
function schedule() {
  if (scheduled) return;
  scheduled = true;
  const run = () => {
    if (!scheduled) return;
    scheduled = false;
    render();
  };
  requestAnimationFrame(run);
  setTimeout(run, 100);
}

function render() {
  renderTasks();
  renderNotifications();
  renderPicker();
  renderProject();
}

const FILTERS = {
  open: (task) => !task.is_deleted && !task.completed,
  completed: (task) => !task.is_deleted && task.completed,
  all: (task) => !task.is_deleted,
  trash: (task) => task.is_deleted,
};

/** Per id, the row and the resource it shows: a row is refilled only when that changed. */
const taskRows = new Map();
const notificationRows = new Map();

/**
 * Shows `items` in `list`, in order, one row each, reusing the rows of `rows` (refilled by
 * `fill` when their item changed); nodes are moved only when the order changed, so focus
 * stays where it is on a mere update.
 */
function renderKeyed(list, rows, template, items, fill, context = null) {
  const ids = new Set(items.map((item) => item.id));
  for (const id of rows.keys()) if (!ids.has(id)) rows.delete(id);
  const elements = items.map((item) => {
    const known = rows.get(item.id);
    if (known?.item === item && known.context === context) return known.element;
    const element = known?.element ?? $(template).content.firstElementChild.cloneNode(true);
    element.dataset.id = String(item.id);
    fill(element, item);
    rows.set(item.id, { item, element, context });
    return element;
  });
  const current = list.children;
  if (current.length === elements.length && elements.every((element, i) => current[i] === element)) return;
  const fragment = document.createDocumentFragment();
  fragment.append(...elements);
  list.replaceChildren(fragment);
}

function renderTasks() {
  const tasks = [...state.tasks.values()];
  for (const button of $$('#filters button')) {
    const { filter } = button.dataset;
    button.setAttribute('aria-pressed', String(filter === state.filter));
    $('.count', button).textContent = state.loaded ? String(tasks.filter(FILTERS[filter]).length) : '';
  }
  const shown = tasks.filter(FILTERS[state.filter]).sort((a, b) => b.id - a.id);
  renderKeyed($('#tasks'), taskRows, '#task-row', shown, fillTask);
  $('#tasks-empty').hidden = !state.loaded || shown.length > 0;
}

function fillTask(element, task) {
  element.classList.toggle('completed', task.completed);
  element.classList.toggle('deleted', task.is_deleted);
  const done = $('.done', element);
  done.checked = task.completed;
  done.disabled = task.is_deleted;
  $('.title', element).textContent = task.title;
  const description = $('.description', element);
  description.textContent = task.description ?? '';
  description.hidden = !task.description;
  const priority = $('.priority', element);
  priority.textContent = task.priority.toLowerCase();
  priority.dataset.priority = task.priority;
  const due = $('.due', element);
  due.textContent = task.due_date ? `due ${task.due_date.slice(0, 10)}` : '';
  due.classList.toggle('overdue', Boolean(task.due_date) && !task.completed && Date.parse(task.due_date) < Date.now());
  $('.edit', element).hidden = task.is_deleted;
  $('.delete', element).hidden = task.is_deleted;
  $('.restore', element).hidden = !task.is_deleted;
  $('.purge', element).hidden = !task.is_deleted;
}

// --- the project board ----------------------------------------------------------------

const COLUMNS = {
  pending: (task) => !task.is_deleted && !task.completed,
  completed: (task) => !task.is_deleted && task.completed,
  trash: (task) => task.is_deleted,
};
const columnRows = { pending: new Map(), completed: new Map(), trash: new Map() };

/** The projects followed, by name. */
function boardsByName() {
  return [...state.boards.keys()]
    .map((id) => ({ id, name: state.projectInfo.get(id)?.name ?? '…' }))
    .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}

const projectButtons = new Map();

function renderPicker() {
  $('#picker button[data-project=""]').setAttribute('aria-pressed', String(state.selected === null));
  const items = boardsByName();
  renderKeyed($('#project-list'), projectButtons, '#project-row', items, fillProjectButton, state.selected);
  for (const { id } of items) {
    const online = state.presence.get(id)?.online ?? 0;
    $('.count', projectButtons.get(id).element).textContent = online ? String(online) : '';
  }
  const invitations = [...state.invitations.values()];
  $('#invitations').hidden = invitations.length === 0;
  renderKeyed($('#invitations .list'), invitationRows, '#invitation-row', invitations, fillInvitation);
}

function fillProjectButton(element, { id, name }) {
  const button = $('button', element);
  button.dataset.project = id;
  button.setAttribute('aria-pressed', String(state.selected === id));
  $('.name', button).textContent = name;
}

const invitationRows = new Map();

function fillInvitation(element, invitation) {
  const by = invitation.invited_by_name ? ` from ${invitation.invited_by_name}` : '';
  $('.text', element).textContent = `${invitation.project_name} (${invitation.role})${by}`;
}

const ROLE_CAN_WRITE = new Set(['owner', 'editor']);

function renderProject() {
  const id = state.selected;
  const section = $('#project');
  $('#personal').hidden = id !== null;
  section.hidden = id === null;
  if (id === null) return;
  const board = state.boards.get(id);
  const info = state.projectInfo.get(id);
  const role = info?.role ?? null;
  const canWrite = ROLE_CAN_WRITE.has(role);
  section.dataset.role = role ?? '';
  $('#project-heading .name').textContent = info?.name ?? '…';
  $('#project-heading .role').textContent = role ? `(${role})` : '';
  const description = $('.project-head .description', section);
  description.textContent = info?.description ?? '';
  description.hidden = !info?.description;
  $('.delete-project', section).hidden = role !== 'owner';
  $('#invite').hidden = role !== 'owner';
  $('#new-project-task').hidden = !canWrite;
  $('.loading', section).hidden = Boolean(board?.loaded);

  // Members, the online first; each with their devices while online.
  const presence = state.presence.get(id);
  const members = [...(board?.members.values() ?? [])].map((m) => ({ ...m, id: m.user_id }));
  const devices = (member) => presence?.members?.[member.user_id] ?? 0;
  members.sort((a, b) => Number(devices(b) > 0) - Number(devices(a) > 0) || a.name.localeCompare(b.name));
  // Few rows, refilled at each render (presence changes them all).
  renderKeyed($('#members'), memberRows, '#member-row', members, fillMember, {});
  $('#members-heading .online').textContent = presence ? `${presence.online} online` : '';

  // Who a task may be assigned to.
  const assignee = $('#new-project-task select[name="assignee_id"]');
  const options = JSON.stringify(members.map((m) => [m.user_id, m.name]).sort());
  if (assignee.dataset.options !== options) {
    const chosen = assignee.value;
    assignee.replaceChildren(new Option('Nobody', ''), ...members.map((m) => new Option(m.name, m.user_id)));
    assignee.value = members.some((m) => m.user_id === chosen) ? chosen : '';
    assignee.dataset.options = options;
  }

  const tasks = [...(board?.tasks.values() ?? [])];
  // Rows are refilled when their task changed, or what they show of the members and role.
  const context = { members: board?.members, canWrite, key: `${id} ${board?.membersVersion ?? 0} ${canWrite}` };
  for (const [status, keep] of Object.entries(COLUMNS)) {
    const column = $(`#project .column[data-status="${status}"]`);
    const shown = tasks.filter(keep).sort((a, b) => b.id - a.id);
    $('.count', column).textContent = board?.loaded ? String(shown.length) : '';
    renderKeyed($('.list', column), columnRows[status], '#task-row', shown, (element, task) => fillProjectTask(element, task, context), context.key);
  }
}

const memberRows = new Map();

function fillMember(element, member) {
  const presence = state.presence.get(state.selected);
  const devices = presence?.members?.[member.user_id] ?? 0;
  element.dataset.userId = member.user_id;
  element.dataset.online = String(devices > 0);
  $('.name', element).textContent = member.user_id === state.user?.id ? `${member.name} (you)` : member.name;
  $('.presence', element).textContent = devices > 1 ? `online on ${devices} devices` : devices === 1 ? 'online' : '';
  $('.role', element).textContent = member.role;
  const role = state.projectInfo.get(state.selected)?.role;
  $('.remove', element).hidden = role !== 'owner' || member.user_id === state.user?.id;
}

function fillProjectTask(element, task, { members, canWrite }) {
  fillTask(element, task);
  $('.assignee', element).textContent = task.assignee_id ? `→ ${members?.get(task.assignee_id)?.name ?? 'a former member'}` : '';
  $('.done', element).disabled = task.is_deleted || !canWrite;
  $('.actions', element).hidden = !canWrite;
}

function renderNotifications() {
  const newest = [...state.notifications.values()].sort((a, b) => b.id - a.id);
  // Keep only what is shown (events add more); the unread ids cover the rest.
  for (const old of newest.splice(NOTIFICATIONS_SHOWN)) state.notifications.delete(old.id);
  renderKeyed($('#notifications'), notificationRows, '#notification-row', newest, fillNotification);
  $('#notifications-empty').hidden = !state.loaded || newest.length > 0;
  const unread = state.unread.size;
  const badge = $('#unread');
  badge.textContent = String(unread);
  badge.dataset.count = String(unread);
  $('#read-all').disabled = unread === 0;
  document.title = unread ? `(${unread}) taskstream` : 'taskstream';
}

function fillNotification(element, notification) {
  element.classList.toggle('unread', !notification.is_read);
  $('.title', element).textContent = notification.title;
  $('.message', element).textContent = notification.message;
  const when = $('.when', element);
  when.dateTime = notification.created_at;
  when.textContent = new Date(notification.created_at).toLocaleString();
  $('.read', element).hidden = notification.is_read;
}

// --- actions (REST; their results arrive as events) -----------------------------------

function bindBoard() {
  $('#account .signout').addEventListener('click', signOut);
  $('#account .verify').addEventListener('click', (event) =>
    act(event.currentTarget, async () => {
      const { data } = await api.request('POST', '/auth/verify-email/request');
      toast(data.message);
    }),
  );
  $('#connection .reconnect').addEventListener('click', () => socket?.reconnect());
  // Back online: try now rather than when the backoff says.
  addEventListener('online', () => {
    if (socket?.status.state === 'reconnecting') socket.reconnect();
  });

  const form = $('#new-task');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const { title, description, priority, due_date } = Object.fromEntries(new FormData(form));
    const task = { title, priority };
    if (description.trim()) task.description = description;
    if (due_date) task.due_date = due_date;
    act(form, async () => {
      await api.createTask(task);
      form.reset();
      $('input[name="title"]', form).focus();
    });
  });

  for (const button of $$('#filters button')) {
    button.addEventListener('click', () => {
      state.filter = button.dataset.filter;
      renderTasks();
    });
  }

  bindTaskList($('#tasks'), (id) => state.tasks.get(id));
  bindTaskList($('#project .columns'), (id) => state.boards.get(state.selected)?.tasks.get(id));
  bindProjects();

  $('#notifications').addEventListener('click', (event) => {
    const button = event.target.closest('button.read');
    if (!button) return;
    const row = button.closest('li');
    act(row, () => api.markNotificationRead(Number(row.dataset.id)));
  });
  $('#read-all').addEventListener('click', (event) => act(event.currentTarget, () => api.markAllNotificationsRead()));

  // Save keeps the dialog open until the change is made (and on an error, with what was
  // typed); Cancel and Escape close it.
  $('#edit-task form').addEventListener('submit', (event) => {
    if (event.submitter?.value !== 'save') return;
    event.preventDefault();
    saveEditor();
  });
  $('#edit-task').addEventListener('close', () => (editing = null));
}

/** Runs a REST action with `element` busy; shows its error, if any. */
function act(element, call) {
  return busy(element, () => authed(call)).catch((error) => {
    if (error instanceof ApiError && error.status === 401) return; // sessionEnded() took over
    toast(describe(error));
  });
}

async function signOut() {
  const button = $('#account .signout');
  button.disabled = true;
  try {
    await api.logout();
  } catch {
    // The server may be unreachable: forget the token here all the same.
  } finally {
    button.disabled = false;
    api.setToken(null);
    showAuth('You are signed out.');
  }
}

/** Task rows' buttons and boxes in `list`; `lookup(id)` finds the task shown. */
function bindTaskList(list, lookup) {
  list.addEventListener('click', (event) => {
    const button = event.target.closest('button');
    const row = event.target.closest('li.task');
    if (!button || !row) return;
    const id = Number(row.dataset.id);
    if (button.matches('.edit')) return openEditor(lookup(id));
    if (button.matches('.delete')) return act(row, () => api.deleteTask(id));
    if (button.matches('.restore')) return act(row, () => api.restoreTask(id));
    if (button.matches('.purge')) {
      const task = lookup(id);
      if (confirm(`Delete “${task?.title ?? 'this task'}” for good? This cannot be undone.`)) {
        act(row, () => api.deleteTask(id, { permanent: true }));
      }
    }
  });
  list.addEventListener('change', (event) => {
    if (!event.target.matches('.done')) return;
    const row = event.target.closest('li.task');
    const id = Number(row.dataset.id);
    const completed = event.target.checked;
    // The box shows the task as it is until its event says otherwise.
    event.target.checked = lookup(id)?.completed ?? !completed;
    act(row, () => api.completeTask(id, completed));
  });
}

/** The picker, invitations, and the selected project's forms and buttons. */
function bindProjects() {
  $('#picker .tabs').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-project]');
    if (button) select(button.dataset.project || null);
  });

  const created = $('#new-project');
  created.addEventListener('submit', (event) => {
    event.preventDefault();
    const { name } = Object.fromEntries(new FormData(created));
    act(created, async () => {
      const project = await api.createProject({ name });
      created.reset();
      state.projectInfo.set(project.id, project);
      // Shown once its stream starts (project.joined), at once if it already has.
      select(project.id);
    });
  });

  $('#invitations').addEventListener('click', (event) => {
    const button = event.target.closest('button');
    const row = event.target.closest('li.invitation');
    if (!button || !row) return;
    const id = row.dataset.id;
    if (button.matches('.accept')) {
      act(row, async () => {
        const project = await api.acceptInvitation(id);
        state.invitations.delete(id);
        state.projectInfo.set(project.id, project);
        select(project.id);
      });
    } else if (button.matches('.decline')) {
      act(row, async () => {
        await api.declineInvitation(id);
        state.invitations.delete(id);
        schedule();
      });
    }
  });

  const invite = $('#invite');
  invite.addEventListener('submit', (event) => {
    event.preventDefault();
    const { email, role } = Object.fromEntries(new FormData(invite));
    const projectId = state.selected;
    act(invite, async () => {
      await api.invite(projectId, { email, role });
      invite.reset();
      toast(`Invitation sent to ${email}.`);
    });
  });

  const form = $('#new-project-task');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const { title, description, priority, assignee_id } = Object.fromEntries(new FormData(form));
    const task = { title, priority, project_id: state.selected };
    if (description.trim()) task.description = description;
    if (assignee_id) task.assignee_id = assignee_id;
    act(form, async () => {
      await api.createTask(task);
      form.reset();
      $('input[name="title"]', form).focus();
    });
  });

  $('#members').addEventListener('click', (event) => {
    const row = event.target.closest('li.member');
    if (!row || !event.target.closest('button.remove')) return;
    const projectId = state.selected;
    const name = state.boards.get(projectId)?.members.get(row.dataset.userId)?.name ?? 'this member';
    if (confirm(`Remove ${name} from the project?`)) act(row, () => api.removeMember(projectId, row.dataset.userId));
  });
  $('#project .leave').addEventListener('click', (event) => {
    const projectId = state.selected;
    if (confirm('Leave this project?')) act(event.currentTarget, () => api.leaveProject(projectId));
  });
  $('#project .delete-project').addEventListener('click', (event) => {
    const projectId = state.selected;
    const name = state.projectInfo.get(projectId)?.name ?? 'this project';
    if (confirm(`Delete ${name} and all its tasks for every member? This cannot be undone.`)) {
      act(event.currentTarget, () => api.deleteProject(projectId));
    }
  });
}

// --- the editor -----------------------------------------------------------------------

/** The task being edited, as it was when the editor opened. */
let editing = null;

function openEditor(task) {
  if (!task) return;
  editing = task;
  const dialog = $('#edit-task');
  const form = $('form', dialog);
  form.elements.title.value = task.title;
  form.elements.description.value = task.description ?? '';
  form.elements.priority.value = task.priority;
  form.elements.due_date.value = task.due_date?.slice(0, 10) ?? '';
  $('.note', dialog).hidden = true;
  showError($('.error', dialog), null);
  dialog.showModal();
}

function closeEditor() {
  editing = null;
  const dialog = $('#edit-task');
  if (dialog.open) dialog.close('cancel');
}

/** What another device did to the task being edited, said in the editor. */
function editedElsewhere(event) {
  const note = $('#edit-task .note');
  note.textContent =
    event.event === 'task.purged' || event.event === 'task.deleted'
      ? 'This task was just deleted on another device.'
      : 'This task was just changed on another device: saving keeps their changes to the fields you did not edit.';
  note.hidden = false;
}

/** Sends only the fields that were edited, so that others' changes to the rest stay. */
function saveEditor() {
  const before = editing;
  if (!before) return;
  const dialog = $('#edit-task');
  const form = $('form', dialog);
  const description = form.elements.description.value;
  const due = form.elements.due_date.value;
  const changes = {};
  if (form.elements.title.value !== before.title) changes.title = form.elements.title.value;
  if (description !== (before.description ?? '')) changes.description = description.trim() ? description : null;
  if (form.elements.priority.value !== before.priority) changes.priority = form.elements.priority.value;
  if (due !== (before.due_date?.slice(0, 10) ?? '')) changes.due_date = due || null;
  if (Object.keys(changes).length === 0) return dialog.close('cancel');
  showError($('.error', dialog), null);
  busy(form, () => authed(() => api.updateTask(before.id, changes)))
    .then(() => dialog.close('saved'))
    .catch((error) => showError($('.error', dialog), error));
}

// --- the pages mails link to ----------------------------------------------------------

/** The link's token, taken out of the address bar (and so out of the history). */
function takeLinkToken() {
  const token = new URLSearchParams(location.search).get('token');
  history.replaceState(null, '', location.pathname);
  return token;
}

async function verifyEmail() {
  show('verify');
  const result = $('#verify .result');
  const token = takeLinkToken();
  const outcome = (kind, text) => {
    result.dataset.outcome = kind;
    result.textContent = text;
  };
  if (!token) return outcome('error', 'This link has no token: open the link from the mail as it is.');
  try {
    const { data } = await api.request('POST', '/auth/verify-email', { body: { token }, auth: false });
    outcome('success', `${data.message}: ${data.profile.email}`);
  } catch (error) {
    outcome('error', describe(error));
  }
}

function resetPassword() {
  show('reset');
  const token = takeLinkToken();
  const section = $('#reset');
  const form = $('form', section);
  const error = $('.error', form);
  const result = $('.result', section);
  if (!token) {
    form.hidden = true;
    result.textContent = 'This link has no token: open the link from the mail as it is.';
    result.hidden = false;
    return;
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const { password, confirm } = Object.fromEntries(new FormData(form));
    if (password !== confirm) return showError(error, new Error('The two passwords differ.'));
    showError(error, null);
    try {
      const { data } = await busy(form, () =>
        api.request('POST', '/auth/password/reset', { body: { token, new_password: password }, auth: false }),
      );
      // Every session of the account ended, this tab's too.
      api.setToken(null);
      form.hidden = true;
      result.textContent = data.message;
      result.hidden = false;
    } catch (failure) {
      showError(error, failure);
    }
  });
}

// --- start ----------------------------------------------------------------------------

function main() {
  const token = storedToken();
  api = makeApi(token);
  bindAuth();
  bindBoard();
  if (route === 'verify-email') return verifyEmail();
  if (route === 'reset-password') return resetPassword();
  // With a token kept from before, straight to the board: the first reload (after the
  // socket is ready) loads the account too, and a dead token sends us to sign in.
  if (token) enterBoard();
  else showAuth();
}

main();
