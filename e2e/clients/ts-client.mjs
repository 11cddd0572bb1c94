// The TypeScript SDK client (@modelcontextprotocol/sdk, pinned in e2e/node)
// against a real `mcpd serve`. Run with Node 22 from e2e/node; run.sh does it.
//
// Story: discovery -> dynamic registration -> PKCE authorization (login and
// consent pages driven over HTTP) -> token -> tools/list -> whoami ->
// note_save/note_get -> the access token expires (server runs with a short
// access-token lifetime) -> the SDK refreshes by itself -> calls continue ->
// the runner revokes the client with `mcpd client revoke` -> the next call is
// refused with 401.
//
// Environment:
//   MCPD_URL            issuer, e.g. http://127.0.0.1:8080 (MCP endpoint is MCPD_URL/mcp)
//   MCPD_E2E_USER       user name (default alice)
//   MCPD_E2E_PASSWORD   that user's password
//   MCPD_E2E_STATE_DIR  directory shared with the runner: this client writes
//                       `ts-client.client_id` there and then waits until the
//                       runner creates `ts-client.revoked`.
// Output: one `ok - <step>` / `not ok - <step>` line per step (TAP-like);
// exit status 1 when any step failed.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DrivenProvider, Tap, recordingFetch, sleep, structured } from './lib/oauth-client.mjs';

const issuer = (process.env.MCPD_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const mcpUrl = new URL(`${issuer}/mcp`);
// With an issuer that has a path (run.sh MCPD_E2E_ISSUER_PATH), paths on
// the wire are compared without it: /mcpd/token is /token (recordingFetch).
const stateDir = process.env.MCPD_E2E_STATE_DIR || '';
const user = process.env.MCPD_E2E_USER || 'alice';

const tap = new Tap();
const ok = (step) => tap.ok(step);
const notOk = (step, why) => tap.notOk(step, why);
const check = (cond, step, why) => tap.check(cond, step, why);

// Every HTTP exchange the SDK makes, for assertions on what really went over the wire.
const wire = [];

async function main() {
  const provider = new DrivenProvider({
    // Nothing listens here: the consent driver reads the Location header instead.
    redirectUrl: 'http://127.0.0.1:47613/callback',
    user,
    clientName: 'mcpd e2e TypeScript SDK client',
  });
  const newTransport = () => new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch(wire, issuer) });

  // 1. First connect: 401 -> discovery -> DCR -> authorization (driven) -> UnauthorizedError.
  let transport = newTransport();
  let client = new Client({ name: 'mcpd-e2e-ts-client', version: '1.0.0' });
  let firstErr;
  try {
    await client.connect(transport);
  } catch (e) {
    firstErr = e;
  }
  const first401 = wire.find((w) => w.path === '/mcp' && w.status === 401);
  check(!!first401 && /resource_metadata=/.test(first401.wwwAuthenticate || ''), 'unauthenticated POST /mcp answers 401 with resource_metadata', first401?.wwwAuthenticate);
  check(wire.some((w) => w.path.startsWith('/.well-known/oauth-protected-resource') && w.status === 200), 'discovery: protected resource metadata fetched');
  check(wire.some((w) => (w.path.startsWith('/.well-known/oauth-authorization-server') || w.path.startsWith('/.well-known/openid-configuration')) && w.status === 200), 'discovery: authorization server metadata fetched');
  const reg = wire.find((w) => w.method === 'POST' && w.path === '/register');
  if (!check(reg && reg.status === 201 && provider.clientInformation()?.client_id, 'dynamic client registration (201, client_id)', reg ? `status ${reg.status}` : 'no /register call')) return;
  const clientId = provider.clientInformation().client_id;
  if (!check(firstErr instanceof UnauthorizedError, 'first connect ends in UnauthorizedError (redirect needed)', firstErr?.message)) return;
  const authUrl = provider.authUrls[0] ? new URL(provider.authUrls[0]) : undefined;
  check(
    authUrl && authUrl.searchParams.get('code_challenge_method') === 'S256' && authUrl.searchParams.get('code_challenge') && authUrl.searchParams.get('resource'),
    'authorization request carries PKCE S256 and resource',
    authUrl?.search,
  );
  if (!check(!!provider.code, 'login + consent pages driven, code received at redirect_uri', provider.lastCallback?.href)) return;
  check(provider.lastCallback.searchParams.get('iss') === issuer, 'authorization response carries iss = issuer (RFC 9207)', provider.lastCallback.searchParams.get('iss'));

  // 2. Exchange the code and reconnect with a fresh transport.
  try {
    await transport.finishAuth(provider.code);
    ok('token exchange (finishAuth)');
  } catch (e) {
    notOk('token exchange (finishAuth)', e.message);
    return;
  }
  const firstTokens = provider.tokens();
  check(firstTokens?.access_token && firstTokens?.refresh_token, 'token response has access_token and refresh_token', JSON.stringify(Object.keys(firstTokens || {})));
  check(typeof firstTokens?.expires_in === 'number' && firstTokens.expires_in > 0, 'token response has expires_in', firstTokens?.expires_in);
  await client.close().catch(() => {});

  transport = newTransport();
  client = new Client({ name: 'mcpd-e2e-ts-client', version: '1.0.0' });
  try {
    await client.connect(transport);
    ok('connect with the access token (initialize)');
  } catch (e) {
    notOk('connect with the access token (initialize)', e.message);
    return;
  }

  if (stateDir) writeFileSync(join(stateDir, 'ts-client.client_id'), `${clientId}\n`);
  console.log(`# client_id=${clientId}`);

  // 3. Tools.
  try {
    const tools = await client.listTools();
    const names = tools.tools.map((t) => t.name);
    check(['whoami', 'note_save', 'note_get'].every((n) => names.includes(n)), 'tools/list includes whoami, note_save, note_get', names.join(','));
  } catch (e) {
    notOk('tools/list', e.message);
  }

  let who;
  try {
    const r = await client.callTool({ name: 'whoami', arguments: {} });
    who = structured(r);
    check(!r.isError && who?.user === user && who?.client_id === clientId && Array.isArray(who?.scopes), 'whoami: user and client_id match', JSON.stringify(who));
  } catch (e) {
    notOk('whoami', e.message);
  }

  let noteId;
  try {
    const r = await client.callTool({ name: 'note_save', arguments: { title: 'ts-client', body: 'saved by the TypeScript SDK', tags: ['e2e'] } });
    noteId = structured(r)?.id;
    check(!r.isError && noteId, 'note_save returns an id', JSON.stringify(r));
  } catch (e) {
    notOk('note_save', e.message);
  }
  if (noteId) {
    try {
      const r = await client.callTool({ name: 'note_get', arguments: { id: noteId } });
      const n = structured(r);
      check(!r.isError && n?.id === noteId && n?.title === 'ts-client' && n?.body === 'saved by the TypeScript SDK', 'note_get returns the saved note', JSON.stringify(n));
    } catch (e) {
      notOk('note_get', e.message);
    }
  }

  // 4. Let the access token expire, then call again: the SDK must refresh by itself.
  const last = provider.savedTokens[provider.savedTokens.length - 1];
  const ttl = Number(last.tokens.expires_in) || 3;
  if (!check(ttl <= 60, 'access token lifetime is short (server runs with --access-token-ttl 3s)', `expires_in=${last.tokens.expires_in}`)) return;
  const waitMs = Math.max(0, last.at + ttl * 1000 + 2500 - Date.now());
  console.log(`# waiting ${Math.round(waitMs / 100) / 10}s for the access token (expires_in=${last.tokens.expires_in}) to expire`);
  await sleep(waitMs);
  const savesBefore = provider.savedTokens.length;
  const wireBefore = wire.length;
  try {
    const r = await client.callTool({ name: 'whoami', arguments: {} });
    const w = structured(r);
    check(!r.isError && w?.user === user, 'call after access-token expiry succeeds', JSON.stringify(w));
  } catch (e) {
    notOk('call after access-token expiry succeeds', e.message);
  }
  const after = wire.slice(wireBefore);
  check(after.some((w) => w.path === '/mcp' && w.status === 401), 'expired access token answered with 401', after.map((w) => `${w.method} ${w.path} ${w.status}`).join(', '));
  const refreshCall = after.find((w) => w.path === '/token' && /grant_type=refresh_token/.test(w.body));
  check(refreshCall && refreshCall.status === 200, 'SDK refreshed by itself (grant_type=refresh_token -> 200)', refreshCall ? `status ${refreshCall.status}` : 'no refresh request');
  const newSave = provider.savedTokens.slice(savesBefore).pop();
  check(
    newSave && newSave.tokens.refresh_token && newSave.tokens.refresh_token !== firstTokens.refresh_token && newSave.tokens.access_token !== firstTokens.access_token,
    'saveTokens called again with a new (rotated) refresh token',
  );
  try {
    const r = await client.callTool({ name: 'note_get', arguments: { id: noteId } });
    check(!r.isError && structured(r)?.id === noteId, 'calls continue after refresh (note_get)');
  } catch (e) {
    notOk('calls continue after refresh (note_get)', e.message);
  }

  // 5. The runner revokes the client; the next call must be refused.
  if (!stateDir) {
    console.log('# MCPD_E2E_STATE_DIR unset: skipping the revocation step');
    return;
  }
  writeFileSync(join(stateDir, 'ts-client.ready-for-revoke'), `${clientId}\n`);
  const deadline = Date.now() + 30000;
  while (!existsSync(join(stateDir, 'ts-client.revoked')) && Date.now() < deadline) await sleep(100);
  if (!check(existsSync(join(stateDir, 'ts-client.revoked')), 'runner revoked the client (mcpd client revoke)')) return;

  provider.interactive = false; // a person would now have to sign in again
  const wireAtRevoke = wire.length;
  let revokedErr;
  let revokedResult;
  try {
    revokedResult = await client.callTool({ name: 'whoami', arguments: {} });
  } catch (e) {
    revokedErr = e;
  }
  const post = wire.slice(wireAtRevoke);
  const summary = post.map((w) => `${w.method} ${w.path} ${w.status}`).join(', ');
  check(post[0] && post[0].path === '/mcp' && post[0].status === 401, 'first call after revoke answered with 401', summary);
  check(!post.some((w) => w.path === '/mcp' && w.status === 200), 'no MCP request succeeds after revoke', summary);
  const refreshAfter = post.filter((w) => w.path === '/token');
  check(refreshAfter.every((w) => w.status >= 400), 'refresh with the revoked grant is refused', summary);
  check(
    revokedResult === undefined && (revokedErr instanceof UnauthorizedError || /401/.test(String(revokedErr?.message))),
    'SDK surfaces UnauthorizedError (re-authorization required)',
    revokedErr ? `${revokedErr.constructor.name}: ${revokedErr.message}` : JSON.stringify(revokedResult),
  );
  check(provider.authUrls.length >= 2, 'SDK asked for a new authorization (redirectToAuthorization)', `${provider.authUrls.length} authorization URLs`);
  await client.close().catch(() => {});
}

try {
  await main();
} catch (e) {
  notOk('unexpected exception', e.stack || e.message);
}
tap.finish('ts-client');
