// The dashboard in a real browser (headless Chromium) against a real taskstream server, on
// SQLite and on PostgreSQL: what one browser does reaches another live; a restarted server
// is reconnected to and caught up with, nothing missing or doubled; tokens expiring under a
// short lifetime are refreshed unnoticed; the pages mails link to work; and the sign-in
// page stays light. Nothing here waits for a fixed time: each step waits for what the user
// would see.

import assert from 'node:assert/strict';

import {
  addTask,
  boardReady,
  latestSeq,
  PASSWORD,
  scenario,
  showTasks,
  shownPosition,
  signIn,
  signUp,
  tag,
  taskRow,
  titles,
  useBrowser,
  waitForTitles,
  watchIndicator,
} from '../support/harness.js';

useBrowser();

scenario('two browsers signed in as one user see each other\'s changes live', async (run) => {
  const server = await run.server();
  const a = await run.page('a');
  const b = await run.page('b');
  const credentials = await run.step('sign-up-in-a', () => signUp(a, server));
  await run.step('sign-in-in-b', () => signIn(b, server, credentials));

  const title = `Write the report ${tag()}`;
  await run.step('create-in-a', async () => {
    await addTask(a, title);
    await taskRow(b, title).waitFor();
  });
  assert.deepEqual(await titles(a), [title]);
  assert.deepEqual(await titles(b), [title]);

  // Data is text, never markup.
  const markup = '<img src=x onerror="window.__pwned=1"> & <b>bold</b>';
  await run.step('markup-title-in-b', async () => {
    await addTask(b, markup);
    await taskRow(a, markup).waitFor();
  });
  assert.equal(await a.locator('#tasks img, #tasks b').count(), 0);
  assert.equal(await a.evaluate(() => window.__pwned ?? null), null);

  await run.step('edit-in-b', async () => {
    await taskRow(b, title).getByRole('button', { name: 'Edit' }).click();
    const dialog = b.locator('#edit-task');
    await dialog.getByLabel('Title').fill(`${title} (final)`);
    await dialog.getByLabel('Description').fill('two pages, with figures');
    await dialog.getByLabel('Priority').selectOption('HIGH');
    await dialog.getByLabel('Due date').fill('2031-05-04');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await taskRow(a, `${title} (final)`).waitFor();
  });
  const edited = taskRow(a, `${title} (final)`);
  assert.equal(await edited.locator('.description').textContent(), 'two pages, with figures');
  assert.equal(await edited.locator('.priority').textContent(), 'high');
  assert.equal(await edited.locator('.due').textContent(), 'due 2031-05-04');

  await run.step('complete-in-a', async () => {
    // A click, not check(): the box shows the task as it is until the event arrives.
    await taskRow(a, `${title} (final)`).getByLabel('Completed').click();
    await showTasks(b, 'completed');
    await taskRow(b, `${title} (final)`).locator('.done:checked').waitFor();
  });

  await run.step('delete-in-b-restore-in-a', async () => {
    await taskRow(b, `${title} (final)`).getByRole('button', { name: 'Delete', exact: true }).click();
    await showTasks(a, 'trash');
    await taskRow(a, `${title} (final)`).getByRole('button', { name: 'Restore' }).click();
    await taskRow(b, `${title} (final)`).waitFor();
  });

  await run.step('purge-in-a', async () => {
    await showTasks(a, 'all');
    await taskRow(a, markup).getByRole('button', { name: 'Delete', exact: true }).click();
    await showTasks(b, 'trash');
    await taskRow(b, markup).waitFor();
    await showTasks(a, 'trash');
    await taskRow(a, markup).getByRole('button', { name: 'Delete forever' }).click();
    await waitForTitles(b, []);
  });

  // Notifications: both show the account's unread count, and reading all in one clears
  // the other's.
  await run.step('read-all-in-b', async () => {
    const unread = await (await server.signedIn(credentials)).unreadCount();
    assert.ok(unread > 0);
    await a.locator(`#unread[data-count="${unread}"]`).waitFor();
    await b.locator(`#unread[data-count="${unread}"]`).waitFor();
    await b.getByRole('button', { name: 'Mark all read' }).click();
    await a.locator('#unread[data-count="0"]').waitFor();
  });
});

scenario('a restarted server: the page reconnects and catches up, nothing missing or twice', async (run) => {
  const server = await run.server();
  const page = await run.page('page');
  const credentials = await run.step('sign-up', () => signUp(page, server));
  const api = await server.signedIn(credentials);
  const seen = await watchIndicator(page);
  const created = [];
  const create = async (count, label) => {
    for (let i = 0; i < count; i += 1) {
      const title = `${label} ${i + 1}`;
      await api.createTask({ title });
      created.push(title);
    }
  };

  for (const signal of ['SIGKILL', 'SIGTERM']) {
    await run.step(`${signal}-down`, async () => {
      // Written just before the stop: their events may be on their way when it comes.
      await create(3, `before ${signal}`);
      await server.kill(signal);
      await page.locator('#connection[data-state="reconnecting"]').waitFor();
    });
    await run.step(`${signal}-back`, async () => {
      await server.run();
      // Written as soon as it is back, most likely before the page reconnects.
      await create(3, `after ${signal}`);
      await page.locator('#connection[data-state="live"]').waitFor();
      await waitForTitles(page, created);
    });
  }
  const last = await latestSeq(api);
  await page.locator('#connection .positions', { hasText: `user #${last}` }).waitFor();
  assert.equal(await shownPosition(page), last);
  const shown = await titles(page);
  assert.equal(shown.length, created.length, 'each task once');
  assert.deepEqual(new Set(shown), new Set(created));
  const { items } = await api.listTasks({ limit: 500 });
  assert.equal(items.length, created.length, 'no write was repeated');
  const { states, signIn } = await seen();
  assert.ok(states.includes('reconnecting'), `the page said it was reconnecting: ${states}`);
  assert.equal(signIn, false, 'the page stayed signed in');
});

scenario('tokens expiring under a short lifetime are refreshed without the user noticing', async (run) => {
  // JWT_TTL=4s: `auth.expiring` comes half-way through (2 s), so the page refreshes its
  // token every couple of seconds; three refreshes take it well past the first token's end.
  const server = await run.server({ env: { JWT_TTL: '4s' } });
  const page = await run.page('page');
  const credentials = await run.step('sign-up', () => signUp(page, server));
  const seen = await watchIndicator(page);
  const token = () => page.evaluate(() => sessionStorage.getItem('taskstream.token'));
  let current = await token();
  assert.ok(current);
  const expected = [];
  for (let round = 1; round <= 3; round += 1) {
    await run.step(`refresh-${round}`, async () => {
      await page.waitForFunction((before) => sessionStorage.getItem('taskstream.token') !== before, current);
      current = await token();
      // The page acts with its new token, and events keep coming: its own, and those of
      // another device (signed in afresh: its own tokens expire as fast).
      const mine = `mine after refresh ${round}`;
      await addTask(page, mine);
      expected.push(mine);
      const theirs = `theirs after refresh ${round}`;
      await (await server.signedIn(credentials)).createTask({ title: theirs });
      expected.push(theirs);
      await waitForTitles(page, expected);
    });
  }
  const { states, signIn } = await seen();
  console.log(`indicator states while tokens were refreshed (${run.backend}): ${states.join(' -> ')}`);
  assert.equal(signIn, false, 'the sign-in form never showed');
  assert.ok(!states.includes('offline'), `never offline: ${states}`);
  await page.locator('#connection[data-state="live"]').waitFor();
  // And the session is still good for REST: the account loads.
  await page.reload();
  await boardReady(page);
  await waitForTitles(page, expected);
});

scenario('the pages mails link to: verify an address, reset a password', async (run) => {
  const server = await run.server();
  const board = await run.page('board');
  const credentials = await run.step('sign-up', () => signUp(board, server));
  await board.locator('#account .verify').waitFor();

  // The welcome mail's link, opened in another tab.
  const link = await server.mailLink('welcome', credentials.email);
  assert.match(link, new RegExp(`^${server.baseUrl}/verify-email\\?token=`));
  const mail = await run.tab('mail', board);
  await run.step('verify', async () => {
    await mail.goto(link);
    await mail.locator('#verify .result[data-outcome="success"]').waitFor();
  });
  assert.match(await mail.locator('#verify .result').textContent(), new RegExp(credentials.email));
  assert.equal(new URL(mail.url()).search, '', 'the token left the address bar');
  // The open dashboard hears of it (profile.updated).
  await run.step('verified-on-board', () => board.locator('#account .verify').waitFor({ state: 'hidden' }));
  await run.step('link-used-twice', async () => {
    await mail.goto(link);
    await mail.locator('#verify .result[data-outcome="error"]').waitFor();
  });

  // Forgotten password: the form, the mail, the reset page; every session ends.
  const forgot = await run.page('forgot');
  await run.step('ask-for-reset', async () => {
    await forgot.goto(server.baseUrl);
    await forgot.getByRole('button', { name: 'Forgot your password?' }).click();
    await forgot.locator('#forgot').getByLabel('E-mail').fill(credentials.email);
    await forgot.getByRole('button', { name: 'Send the link' }).click();
    await forgot.locator('#forgot .done').waitFor();
  });
  const reset = await server.mailLink('password_reset', credentials.email);
  assert.match(reset, new RegExp(`^${server.baseUrl}/reset-password\\?token=`));
  const newPassword = `${PASSWORD}-new`;
  await run.step('reset', async () => {
    await forgot.goto(reset);
    await forgot.locator('#reset').getByLabel('New password').fill(newPassword);
    await forgot.locator('#reset').getByLabel('Again').fill(newPassword);
    await forgot.getByRole('button', { name: 'Change my password' }).click();
    await forgot.locator('#reset .result:not([hidden])').waitFor();
  });
  // The open dashboard's session ended with the others: it asks to sign in again.
  await run.step('board-signed-out', () => board.locator('#auth .notice', { hasText: 'session has ended' }).waitFor());
  await run.step('sign-in-with-new-password', () => signIn(board, server, { ...credentials, password: newPassword }));
});

scenario(
  'the sign-in page loads under 100 KB transferred',
  async (run) => {
    const server = await run.server();
    const page = await run.page('page');
    await run.step('load', async () => {
      await page.goto(server.baseUrl);
      await page.locator('#signin').waitFor();
    });
    // Everything the page loaded (headers included) by the time the form shows.
    const { total, entries } = await page.evaluate(() => {
      const resources = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
      return {
        total: resources.reduce((n, e) => n + e.transferSize, 0),
        entries: resources.map((e) => `${new URL(e.name).pathname} ${e.transferSize}`),
      };
    });
    console.log(`sign-in page: ${total} bytes transferred:\n  ${entries.join('\n  ')}`);
    assert.ok(entries.length >= 5, `the page and its assets: ${entries}`);
    assert.ok(total < 100 * 1024, `${total} bytes`);
  },
  // What the page weighs does not depend on the storage.
  { backends: ['sqlite'] },
);
