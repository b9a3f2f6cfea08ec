// The project board in a real browser (headless Chromium) against a real taskstream server,
// on SQLite and on PostgreSQL: two people in one project, each in a browser of their own,
// see each other's changes on the board and each other online; membership changes show
// live. Nothing here waits for a fixed time: each step waits for what the user would see.

import assert from 'node:assert/strict';

import {
  createProject,
  memberRow,
  projectTask,
  scenario,
  signIn,
  signUp,
  tag,
  useBrowser,
  waitForColumn,
} from '../support/harness.js';

useBrowser();

scenario('two users in one project see each other\'s changes and each other online', async (run) => {
  const server = await run.server();
  const a = await run.page('ada');
  const b = await run.page('bea');
  const ada = await run.step('sign-up-ada', () => signUp(a, server));
  const bea = await run.step('sign-up-bea', () => signUp(b, server));

  // Accepting an invitation takes a verified address: Bea follows her welcome mail's link
  // (its token, posted to the API as the link's page does); her open board hears of it.
  await run.step('bea-verifies-her-address', async () => {
    const link = await server.mailLink('welcome', bea.email);
    await server.api().verifyEmail(new URL(link).searchParams.get('token'));
    await b.locator('#account .verify').waitFor({ state: 'hidden' });
  });

  const project = `Launch ${tag()}`;
  await run.step('ada-creates-the-project', () => createProject(a, project));
  assert.equal(await a.locator('#project-heading .role').textContent(), '(owner)');

  await run.step('ada-invites-bea', async () => {
    const form = a.locator('#invite');
    await form.getByLabel('E-mail to invite').fill(bea.email);
    await form.getByRole('button', { name: 'Invite' }).click();
    await a.locator('#toast', { hasText: `Invitation sent to ${bea.email}` }).waitFor();
  });

  await run.step('bea-accepts', async () => {
    // The invitation shows up live (its notification), and accepting opens the board.
    const invitation = b.locator('#invitations li.invitation', { hasText: project });
    await invitation.getByRole('button', { name: 'Accept' }).click();
    await b.locator('#project-heading .name', { hasText: project }).waitFor();
    await b.locator('#invitations').waitFor({ state: 'hidden' });
  });
  assert.equal(await b.locator('#project-heading .role').textContent(), '(editor)');

  await run.step('each-sees-the-other-online', async () => {
    await memberRow(a, bea.name, true).waitFor();
    await memberRow(b, ada.name, true).waitFor();
    await memberRow(a, `${ada.name} (you)`, true).waitFor();
  });

  const title = `Draft the announcement ${tag()}`;
  await run.step('ada-adds-a-task', async () => {
    const form = a.locator('#new-project-task');
    await form.getByLabel('Task title').fill(title);
    await form.getByLabel('Assignee').selectOption({ label: bea.name });
    await form.getByRole('button', { name: 'Add' }).click();
    await projectTask(b, 'pending', title).waitFor();
  });
  assert.equal(await projectTask(b, 'pending', title).locator('.assignee').textContent(), `→ ${bea.name}`);

  await run.step('bea-completes-it', async () => {
    await projectTask(b, 'pending', title).getByLabel('Completed').click();
    await projectTask(a, 'completed', title).waitFor();
  });
  await waitForColumn(a, 'pending', []);

  const renamed = `${title} (final)`;
  await run.step('ada-edits-it', async () => {
    await projectTask(a, 'completed', title).getByRole('button', { name: 'Edit' }).click();
    const dialog = a.locator('#edit-task');
    await dialog.getByLabel('Title').fill(renamed);
    await dialog.getByLabel('Description').fill('with the dates');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await projectTask(b, 'completed', renamed).waitFor();
  });
  assert.equal(await projectTask(b, 'completed', renamed).locator('.description').textContent(), 'with the dates');

  await run.step('bea-deletes-it', async () => {
    await projectTask(b, 'completed', renamed).getByRole('button', { name: 'Delete', exact: true }).click();
    await projectTask(a, 'trash', renamed).waitFor();
  });
  await run.step('ada-restores-it', async () => {
    await projectTask(a, 'trash', renamed).getByRole('button', { name: 'Restore' }).click();
    await projectTask(b, 'completed', renamed).waitFor();
  });

  const second = `Book the room ${tag()}`;
  await run.step('bea-adds-one-ada-deletes-it-for-good', async () => {
    const form = b.locator('#new-project-task');
    await form.getByLabel('Task title').fill(second);
    await form.getByRole('button', { name: 'Add' }).click();
    await projectTask(a, 'pending', second).getByRole('button', { name: 'Delete', exact: true }).click();
    await projectTask(b, 'trash', second).waitFor();
    await projectTask(a, 'trash', second).getByRole('button', { name: 'Delete forever' }).click();
    await waitForColumn(b, 'trash', []);
  });
  await waitForColumn(b, 'completed', [renamed]);
  await waitForColumn(a, 'completed', [renamed]);
  // Her own tasks are another list: the project's are not in it.
  assert.equal(await a.locator('#tasks li.task').count(), 0);

  await run.step('bea-leaves-ada-sees-her-offline', async () => {
    await b.close();
    await memberRow(a, bea.name, false).waitFor();
  });

  const again = await run.page('bea-again');
  await run.step('bea-back-online', async () => {
    await signIn(again, server, bea);
    await again.getByRole('button', { name: project }).click();
    await projectTask(again, 'completed', renamed).waitFor();
    await memberRow(a, bea.name, true).waitFor();
  });

  await run.step('ada-removes-bea', async () => {
    await memberRow(a, bea.name).getByRole('button', { name: 'Remove' }).click();
    await again.locator('#toast', { hasText: `You were removed from ${project}` }).waitFor();
    await again.locator('#project').waitFor({ state: 'hidden' });
    await memberRow(a, bea.name).waitFor({ state: 'detached' });
  });
  assert.equal(await again.getByRole('button', { name: project }).count(), 0, 'the project left her picker');
});
