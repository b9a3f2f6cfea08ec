// The browser tests' kit: headless Chromium from the system (Debian's `chromium`) driven by
// playwright-core, real taskstream server processes (SQLite or a fresh PostgreSQL
// database), the mails those servers write, and scenarios that keep a screenshot of every
// page at each step and write them out when the scenario fails.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

import { SERVER_BIN, Server as ProcessServer } from '../../clients/js/support/server.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
/** Where failing scenarios leave their screenshots (CI keeps target/). */
export const SCREENSHOTS = resolve(root, process.env.SCREENSHOT_DIR ?? join('target', 'browser-screenshots'));
export const BACKENDS = ['sqlite', 'postgres'];
export const PASSWORD = 'Correct-Horse-9!';

// --- the browser ----------------------------------------------------------------------

/** @type {import('playwright-core').Browser} */
let browser;

/**
 * One headless Chromium for the file, each scenario in contexts of its own (separate
 * cookies and storage, like two browsers). `launch` starts it on a fresh temporary
 * user-data-dir, removed when it closes.
 */
export function useBrowser() {
  before(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_BIN)`);
    if (!existsSync(SERVER_BIN)) throw new Error(`no server binary at ${SERVER_BIN}: cargo build --bin taskstream (or set TASKSTREAM_BIN)`);
    // Only this run's failures are left there.
    rmSync(SCREENSHOTS, { recursive: true, force: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  after(async () => {
    await browser?.close();
  });
}

// --- servers --------------------------------------------------------------------------

/**
 * A taskstream process (the JavaScript client's test server: free port, temporary
 * DATA_DIR, no SMTP, so mails become files in DATA_DIR/mail), with what the browser
 * scenarios read of it.
 */
export class Server extends ProcessServer {
  /** A REST client of this server (node's fetch), signed in as `credentials`. */
  async signedIn(credentials) {
    const api = this.api();
    await api.signin({ email: credentials.email, password: credentials.password });
    return api;
  }

  // mailLink(kind, email): the link of a mail the server wrote (clients/js/support/server.js).
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Names allow letters only: hex digits become letters. */
export function tag() {
  return [...randomBytes(4).toString('hex')].map((c) => String.fromCharCode(97 + Number.parseInt(c, 16))).join('');
}

// --- scenarios ------------------------------------------------------------------------

/**
 * One scenario, run on SQLite and on PostgreSQL side by side. `fn` gets a Run: its
 * servers, pages and steps; whatever happens they are closed at the end, and on failure the
 * screenshot taken after each step (and one of the moment it failed) is written to
 * SCREENSHOTS, whose path is printed.
 */
export function scenario(name, fn, { backends = BACKENDS, timeout = 50_000 } = {}) {
  test(name, { timeout, concurrency: true }, async (t) => {
    await Promise.all(
      backends.map((backend) =>
        t.test(backend, async () => {
          const run = new Run(name, backend);
          try {
            await fn(run);
            run.checkPageErrors();
          } catch (error) {
            const written = await run.saveScreenshots();
            console.error(`screenshots of "${name}" on ${backend}: ${written}`);
            throw error;
          } finally {
            await run.close();
          }
        }),
      ),
    );
  });
}

class Run {
  constructor(name, backend) {
    this.name = name;
    this.backend = backend;
    this.servers = [];
    this.contexts = [];
    /** @type {{ label: string, page: import('playwright-core').Page }[]} */
    this.pages = [];
    this.shots = [];
    this.pageErrors = [];
    this.stepCount = 0;
  }

  /** A server on this run's backend. */
  async server(options = {}) {
    const server = await Server.start({ backend: this.backend, ...options });
    this.servers.push(server);
    return server;
  }

  /** A page in a browser context of its own (its own storage: another browser, in effect). */
  async page(label) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    // A bound on every wait, so that a failure names what it waited for (the test
    // runner's timeout would only say that time ran out).
    context.setDefaultTimeout(20_000);
    this.contexts.push(context);
    const page = await context.newPage();
    return this.adopt(label, page);
  }

  /** Another page (tab) in the context of `of`. */
  async tab(label, of) {
    return this.adopt(label, await of.context().newPage());
  }

  adopt(label, page) {
    page.on('pageerror', (error) => this.pageErrors.push(`${label}: ${error.message}`));
    // Dialogs (the permanent delete's confirm) are accepted, as the user would.
    page.on('dialog', (dialog) => dialog.accept());
    this.pages.push({ label, page });
    return page;
  }

  /** Runs a step, then keeps a screenshot of every page as it left them. */
  async step(label, fn) {
    this.stepCount += 1;
    const result = await fn();
    await this.snapshot(`${String(this.stepCount).padStart(2, '0')}-${label}`);
    return result;
  }

  async snapshot(label) {
    for (const { label: pageLabel, page } of this.pages) {
      if (page.isClosed()) continue;
      try {
        this.shots.push({ name: `${label}-${pageLabel}.png`, png: await page.screenshot({ fullPage: true }) });
      } catch {
        // A page that cannot be drawn (closing) has nothing to show.
      }
    }
  }

  async saveScreenshots() {
    await this.snapshot('failed');
    const folder = join(SCREENSHOTS, `${slug(this.name)}-${this.backend}`);
    rmSync(folder, { recursive: true, force: true });
    mkdirSync(folder, { recursive: true });
    for (const { name, png } of this.shots) writeFileSync(join(folder, slug(name, '.png')), png);
    for (const server of this.servers) writeFileSync(join(folder, `server-${server.port}.log`), server.log);
    return folder;
  }

  /** An uncaught exception in a page is a bug of the page, whatever the scenario saw. */
  checkPageErrors() {
    if (this.pageErrors.length) throw new Error(`errors in the pages:\n${this.pageErrors.join('\n')}`);
  }

  async close() {
    await Promise.all(this.contexts.map((context) => context.close().catch(() => {})));
    await Promise.all(this.servers.map((server) => server.stop()));
  }
}

function slug(text, keep = '') {
  const base = keep && text.endsWith(keep) ? text.slice(0, -keep.length) : text;
  return `${base.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}${keep}`;
}

// --- the page, as a user drives it ----------------------------------------------------

/** Waits until the board is live and its state loaded (the counts appear with it). */
export async function boardReady(page) {
  await page.locator('#connection[data-state="live"]').waitFor();
  await page.locator('#filters [data-filter="all"] .count:not(:empty)').waitFor();
}

/** Signs a new account up through the page; returns its credentials. */
export async function signUp(page, server) {
  const credentials = { name: `Ada ${tag()}`, email: `ada-${tag()}@example.com`, password: PASSWORD };
  await page.goto(server.baseUrl);
  await page.getByRole('button', { name: 'Sign up' }).click();
  const form = page.locator('#signup');
  await form.getByLabel('Name').fill(credentials.name);
  await form.getByLabel('E-mail').fill(credentials.email);
  await form.getByLabel('Password').fill(credentials.password);
  await form.getByRole('button', { name: 'Create my account' }).click();
  await boardReady(page);
  return credentials;
}

export async function signIn(page, server, credentials) {
  await page.goto(server.baseUrl);
  const form = page.locator('#signin');
  await form.getByLabel('E-mail').fill(credentials.email);
  await form.getByLabel('Password').fill(credentials.password);
  await form.getByRole('button', { name: 'Sign in' }).click();
  await boardReady(page);
}

export async function addTask(page, title) {
  const form = page.locator('#new-task');
  await form.getByLabel('Title').fill(title);
  await form.getByRole('button', { name: 'Add' }).click();
}

export async function showTasks(page, filter) {
  await page.locator(`#filters [data-filter="${filter}"]`).click();
}

/** The row of the task titled `title` in the list shown. */
export const taskRow = (page, title) => page.locator('#tasks li.task').filter({ has: page.locator('.title', { hasText: exactly(title) }) });

/** The titles of the list shown, in order. */
export const titles = (page) => page.locator('#tasks li.task .title').allTextContents();

/** Resolves once the list shown holds exactly `expected` (in any order). */
export async function waitForTitles(page, expected) {
  const want = [...expected].sort();
  await page.waitForFunction(
    (want) => {
      const have = [...document.querySelectorAll('#tasks li.task .title')].map((e) => e.textContent).sort();
      return JSON.stringify(have) === JSON.stringify(want);
    },
    want,
    { polling: 'raf' },
  );
}

/** The stream position the page's indicator shows (`user #N`). */
export async function shownPosition(page) {
  const text = await page.locator('#connection .positions').textContent();
  const match = /user #(\d+)/.exec(text ?? '');
  return match ? Number(match[1]) : null;
}

/** The user's latest seq, from the polling endpoint. */
export async function latestSeq(api) {
  return (await api.events(0, 1)).last_seq;
}

function exactly(text) {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}

/**
 * Records, in the page, every state the connection indicator takes and whether the
 * sign-in form ever shows, from now on: what a user would have seen.
 */
export async function watchIndicator(page) {
  await page.evaluate(() => {
    const seen = (window.__seen = { states: [], signIn: false });
    const indicator = document.querySelector('#connection');
    const auth = document.querySelector('#auth');
    const note = () => {
      const state = indicator.dataset.state;
      if (seen.states.at(-1) !== state) seen.states.push(state);
      if (!auth.hidden) seen.signIn = true;
    };
    note();
    new MutationObserver(note).observe(indicator, { attributes: true, attributeFilter: ['data-state'] });
    new MutationObserver(note).observe(auth, { attributes: true, attributeFilter: ['hidden'] });
  });
  return () => page.evaluate(() => window.__seen);
}

// --- projects -------------------------------------------------------------------------

/** Creates a project through the page's form; the page shows its board once it arrives. */
export async function createProject(page, name) {
  const form = page.locator('#new-project');
  await form.getByLabel('Project name').fill(name);
  await form.getByRole('button', { name: 'Create project' }).click();
  await page.locator('#project-heading .name', { hasText: exactly(name) }).waitFor();
}

/** The card of the task titled `title` in the project board's column `status` (pending, completed, trash). */
export const projectTask = (page, status, title) =>
  page.locator(`#project .column[data-status="${status}"] li.task`).filter({ has: page.locator('.title', { hasText: exactly(title) }) });

/** Resolves once the board's column `status` holds exactly `expected` (in any order). */
export async function waitForColumn(page, status, expected) {
  const want = [...expected].sort();
  await page.waitForFunction(
    ({ status, want }) => {
      const have = [...document.querySelectorAll(`#project .column[data-status="${status}"] li.task .title`)].map((e) => e.textContent).sort();
      return JSON.stringify(have) === JSON.stringify(want);
    },
    { status, want },
    { polling: 'raf' },
  );
}

/** The row of the member named `name` in the project board, online or not (`online`: only as such). */
export function memberRow(page, name, online) {
  const state = online === undefined ? '' : `[data-online="${online}"]`;
  return page.locator(`#members li.member${state}`).filter({ has: page.locator('.name', { hasText: exactly(name) }) });
}
