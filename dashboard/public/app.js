// The taskstream dashboard: sign-in, the user's tasks and notifications kept live by the
// socket of the JavaScript client (clients/js, served beside this file as client/), and
// the pages mails link to (/verify-email, /reset-password).
//
// Every change goes through REST and is shown when its event arrives: the state is only
// ever changed by events (and replaced by a reload), keyed by id, each event carrying the
// whole resource, so nothing is applied twice. Data from the API is inserted as text only.

import { TaskstreamApi, ApiError } from './client/api.js';

// sessionStorage, not localStorage: each refresh rotates the token, and a rotated token
// presented again ends the whole session (it is taken for a stolen copy). Tabs sharing one
// stored token would race to refresh it; here each tab signs in to a session of its own,
// which survives reloads of the tab and is forgotten with it.
const TOKEN_KEY = 'taskstream.token';
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
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token lives as long as the page.
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
  render();
  socket = api.connect({ reload });
  socket.on('task.*', onTask);
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
  taskRows.clear();
  notificationRows.clear();
  $('#tasks').replaceChildren();
  $('#notifications').replaceChildren();
  closeEditor();
  document.title = 'taskstream';
}

/**
 * Loads the whole state through REST: at start and after a `reset` (the socket holds the
 * events after `lastSeq` meanwhile, then applies them on top).
 */
async function reload() {
  const [user, tasks, notifications, unread] = await authed(() =>
    Promise.all([api.me(), allTasks(), api.listNotifications({ limit: NOTIFICATIONS_SHOWN }), unreadIds()]),
  );
  setUser(user);
  state.tasks = new Map(tasks.map((task) => [task.id, task]));
  state.notifications = new Map(notifications.items.map((n) => [n.id, n]));
  state.unread = unread;
  state.loaded = true;
  render();
}

async function allTasks() {
  const tasks = [];
  for (;;) {
    const page = await api.listTasks({ include_deleted: true, limit: TASK_PAGE, offset: tasks.length });
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
  // Project streams (once the server has them) are for a project board, not this list.
  if (event.stream && event.stream !== 'user') return;
  const { id } = event.data;
  if (event.event === 'task.purged') state.tasks.delete(id);
  else state.tasks.set(id, event.data);
  if (editing?.id === id) editedElsewhere(event);
  schedule();
}

function onNotification(event) {
  const notification = event.data;
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
    .map(([stream, seq]) => `${stream} #${seq}`)
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
function renderKeyed(list, rows, template, items, fill) {
  const ids = new Set(items.map((item) => item.id));
  for (const id of rows.keys()) if (!ids.has(id)) rows.delete(id);
  const elements = items.map((item) => {
    const known = rows.get(item.id);
    if (known?.item === item) return known.element;
    const element = known?.element ?? $(template).content.firstElementChild.cloneNode(true);
    element.dataset.id = String(item.id);
    fill(element, item);
    rows.set(item.id, { item, element });
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

  const list = $('#tasks');
  list.addEventListener('click', (event) => {
    const button = event.target.closest('button');
    const row = event.target.closest('li.task');
    if (!button || !row) return;
    const id = Number(row.dataset.id);
    if (button.matches('.edit')) return openEditor(id);
    if (button.matches('.delete')) return act(row, () => api.deleteTask(id));
    if (button.matches('.restore')) return act(row, () => api.restoreTask(id));
    if (button.matches('.purge')) {
      const task = state.tasks.get(id);
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
    event.target.checked = state.tasks.get(id)?.completed ?? !completed;
    act(row, () => api.completeTask(id, completed));
  });

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

// --- the editor -----------------------------------------------------------------------

/** The task being edited, as it was when the editor opened. */
let editing = null;

function openEditor(id) {
  const task = state.tasks.get(id);
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
