// mcp-remote (pinned in e2e/node) as a stdio bridge to a real `mcpd serve`,
// driven headless. mcp-remote opens the authorization URL with the `open`
// package, which on Linux runs its bundled xdg-open; with no desktop session
// xdg-open falls back to $BROWSER. BROWSER=e2e/clients/browser.sh drives the
// login and consent pages over HTTP and GETs the redirect, which lands on
// mcp-remote's own callback server (http://localhost:<port>/oauth/callback).
//
// This script is the MCP host: it spawns mcp-remote over stdio with the
// TypeScript SDK's StdioClientTransport, then initialize -> tools/list ->
// whoami -> note_save/note_get -> the access token expires -> the next call
// still works (mcp-remote refreshed) .
//
// Environment: NODE, MCPD_URL, MCPD_E2E_PASSWORD (passed to browser.sh).
// Output: `ok - <step>` / `not ok - <step>` lines; exit 1 on failure.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { mkdtempSync, readFileSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sleep, structured } from './lib/oauth-client.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const issuer = (process.env.MCPD_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const user = process.env.MCPD_E2E_USER || 'alice';
const node = process.env.NODE || process.execPath;
const proxy = join(here, '..', 'node', 'node_modules', 'mcp-remote', 'dist', 'proxy.js');

let failures = 0;
const ok = (s) => console.log(`ok - mcp-remote: ${s}`);
const notOk = (s, why) => {
  failures++;
  console.log(`not ok - mcp-remote: ${s}${why ? ` # ${String(why).replace(/\s+/g, ' ').slice(0, 400)}` : ''}`);
};
const check = (c, s, why) => (c ? ok(s) : notOk(s, why), c);

const work = mkdtempSync(join(tmpdir(), 'mcpd-mcp-remote-'));
const browserLog = join(work, 'browser.log');
let stderrText = '';

const env = {
  PATH: process.env.PATH,
  HOME: work,
  MCP_REMOTE_CONFIG_DIR: join(work, 'mcp-auth'),
  BROWSER: join(here, 'browser.sh'),
  MCPD_E2E_BROWSER_LOG: browserLog,
  MCPD_E2E_USER: user,
  MCPD_E2E_PASSWORD: process.env.MCPD_E2E_PASSWORD ?? '',
  NODE: node,
  // no desktop session: xdg-open must fall back to $BROWSER
};

const transport = new StdioClientTransport({
  command: node,
  args: [proxy, `${issuer}/mcp`, '--auth-timeout', '60', '--debug'],
  env,
  stderr: 'pipe',
});
transport.stderr?.on('data', (d) => {
  stderrText += d.toString();
});
const client = new Client({ name: 'mcpd-e2e-mcp-remote-host', version: '1.0.0' });

let clientId;

async function main() {
  try {
    await client.connect(transport);
    ok('initialize through the bridge (DCR, login and consent driven via $BROWSER)');
  } catch (e) {
    notOk('initialize through the bridge', e.message);
    return;
  }
  const blog = existsSync(browserLog) ? readFileSync(browserLog, 'utf8') : '';
  check(/opening .*\/authorize\?/.test(blog), 'mcp-remote opened the authorization URL with $BROWSER', blog.slice(0, 300));

  try {
    const names = (await client.listTools()).tools.map((t) => t.name);
    check(['whoami', 'note_save', 'note_get'].every((n) => names.includes(n)), 'tools/list', names.join(','));
  } catch (e) {
    notOk('tools/list', e.message);
  }
  try {
    const r = await client.callTool({ name: 'whoami', arguments: {} });
    const w = structured(r);
    check(!r.isError && w?.user === user && w?.client_id, 'whoami', JSON.stringify(w));
    clientId = w?.client_id;
  } catch (e) {
    notOk('whoami', e.message);
  }
  let id;
  try {
    const r = await client.callTool({ name: 'note_save', arguments: { title: 'mcp-remote', body: 'saved through mcp-remote' } });
    id = structured(r)?.id;
    check(!r.isError && id, 'note_save', JSON.stringify(r));
  } catch (e) {
    notOk('note_save', e.message);
  }
  if (id) {
    try {
      const r = await client.callTool({ name: 'note_get', arguments: { id } });
      check(!r.isError && structured(r)?.body === 'saved through mcp-remote', 'note_get', JSON.stringify(r));
    } catch (e) {
      notOk('note_get', e.message);
    }
  }
  // The server runs with a 3 s access-token lifetime; after it the bridge must refresh on its own.
  await sleep(4500);
  try {
    const r = await client.callTool({ name: 'whoami', arguments: {} });
    check(!r.isError && structured(r)?.user === user, 'call after access-token expiry (bridge refreshed)', JSON.stringify(r));
  } catch (e) {
    notOk('call after access-token expiry (bridge refreshed)', e.message);
  }
  // A refresh, not a second login: the browser was opened exactly once.
  const opened = existsSync(browserLog) ? (readFileSync(browserLog, 'utf8').match(/^browser\.sh: opening /gm) || []).length : 0;
  check(opened === 1, 'no second browser login: the bridge used its refresh token', `browser opened ${opened} times`);

  // An operator revokes the bridge's client: its tokens die (401) and its
  // refresh fails, so the bridge must send the user through the browser again.
  if (!process.env.MCPD_BIN || !process.env.MCPD_DATA || !clientId) {
    console.log('# MCPD_BIN/MCPD_DATA unset: skipping the revocation step');
    return;
  }
  try {
    execFileSync(process.env.MCPD_BIN, ['client', 'revoke', clientId, '--data', process.env.MCPD_DATA], { stdio: 'pipe' });
    ok(`mcpd client revoke ${clientId}`);
  } catch (e) {
    notOk(`mcpd client revoke ${clientId}`, e.stderr?.toString() || e.message);
    return;
  }
  let after;
  let lastErr;
  for (let attempt = 0; attempt < 3 && !after; attempt++) {
    try {
      const r = await client.callTool({ name: 'whoami', arguments: {} });
      if (!r.isError) after = structured(r);
      else lastErr = JSON.stringify(r);
    } catch (e) {
      lastErr = e.message;
      await sleep(2000);
    }
  }
  const reopened = existsSync(browserLog) ? (readFileSync(browserLog, 'utf8').match(/^browser\.sh: opening /gm) || []).length : 0;
  check(reopened === 2, 'after revoke the bridge sent the user through login + consent again', `browser opened ${reopened} times`);
  check(after?.user === user && after?.client_id, 'calls work again after re-authorization', after ? JSON.stringify(after) : lastErr);
}

const timer = setTimeout(() => {
  notOk('finished within 120 s');
  finish();
}, 120000);

async function finish() {
  clearTimeout(timer);
  await client.close().catch(() => {});
  if (failures > 0) {
    console.log('# mcp-remote stderr (tail):');
    for (const l of stderrText.split('\n').slice(-40)) console.log(`#   ${l}`);
    if (existsSync(browserLog)) for (const l of readFileSync(browserLog, 'utf8').split('\n').slice(-20)) console.log(`#   browser: ${l}`);
    try {
      for (const f of readdirSync(join(work, 'mcp-auth'), { recursive: true })) {
        if (String(f).endsWith('debug.log')) {
          const t = readFileSync(join(work, 'mcp-auth', String(f)), 'utf8').split('\n').slice(-30);
          for (const l of t) console.log(`#   debug: ${l}`);
        }
      }
    } catch {}
  }
  rmSync(work, { recursive: true, force: true });
  process.exit(failures > 0 ? 1 : 0);
}

try {
  await main();
} catch (e) {
  notOk('unexpected exception', e.stack || e.message);
}
await finish();
