// The TypeScript client 2.x (@modelcontextprotocol/client, pinned in e2e/node)
// against a real `mcpd serve` with default flags. Run with Node 22 from
// e2e/node; run.sh does it, twice:
//
//   node ts-client-v2.mjs          the client's default negotiation ('legacy':
//                                  initialize, a 2025-era session)
//   node ts-client-v2.mjs --pin    versionNegotiation {mode: {pin: '2026-07-28'}}:
//                                  server/discover, per-request _meta, no session
//
// Story: 401 -> discovery -> dynamic registration -> PKCE authorization (login
// and consent pages driven over HTTP; only notes:read is ticked) ->
// finishAuth(callbackParams), whose iss is checked (a forged one is refused
// before the code is redeemed) -> connect -> tools/list -> whoami (notes:read
// only) -> note_save answered 403 insufficient_scope -> the SDK steps up
// (a new authorization for the union of scopes) -> finishAuth -> note_save,
// note_get round trip, whoami holds both scopes -> the access token expires
// (serve runs with --access-token-ttl 3s) -> the SDK refreshes by itself ->
// calls continue.
//
// Environment: MCPD_URL (issuer), MCPD_E2E_USER, MCPD_E2E_PASSWORD.
// Output: one `ok - <step>` / `not ok - <step>` line per step (TAP-like);
// exit status 1 when any step failed.

import { Client, StreamableHTTPClientTransport, UnauthorizedError, IssuerMismatchError } from '@modelcontextprotocol/client';
import { DrivenProvider, Tap, recordingFetch, sleep, structured } from './lib/oauth-client.mjs';

const pinned = process.argv.includes('--pin');
const name = pinned ? 'ts-client-v2-pinned' : 'ts-client-v2';
const issuer = (process.env.MCPD_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const mcpUrl = new URL(`${issuer}/mcp`);
const user = process.env.MCPD_E2E_USER || 'alice';
const modern = '2026-07-28';

const tap = new Tap();
const wire = [];
const provider = new DrivenProvider({
  // Nothing listens here: the consent driver reads the Location header instead.
  redirectUrl: 'http://127.0.0.1:47614/callback',
  user,
  clientName: `mcpd e2e TypeScript client 2.x (${pinned ? 'pinned to 2026-07-28' : 'default negotiation'})`,
});
const clientOptions = pinned ? { versionNegotiation: { mode: { pin: modern } } } : {};
const newClient = () => new Client({ name: 'mcpd-e2e-ts-client-v2', version: '1.0.0' }, clientOptions);
// With an issuer that has a path (run.sh MCPD_E2E_ISSUER_PATH), paths on the
// wire are compared without it: /mcpd/token is /token.
const newTransport = () => new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch(wire, issuer) });
const mcpCalls = (from = 0) => wire.slice(from).filter((w) => w.path === '/mcp');
const summary = (calls) => calls.map((w) => `${w.method} ${w.path} ${w.status}`).join(', ');

async function main() {
  // 1. First connect: 401 -> discovery -> DCR -> authorization (driven) -> UnauthorizedError.
  provider.grantScopes = ['notes:read'];
  let transport = newTransport();
  let client = newClient();
  let firstErr;
  try {
    await client.connect(transport);
  } catch (e) {
    firstErr = e;
  }
  const first401 = wire.find((w) => w.path === '/mcp' && w.status === 401);
  tap.check(!!first401 && /resource_metadata=/.test(first401.wwwAuthenticate || ''), 'unauthenticated POST /mcp answers 401 with resource_metadata', first401?.wwwAuthenticate);
  tap.check(wire.some((w) => w.path.startsWith('/.well-known/oauth-protected-resource') && w.status === 200), 'discovery: protected resource metadata fetched');
  tap.check(
    wire.some((w) => (w.path.startsWith('/.well-known/oauth-authorization-server') || w.path.startsWith('/.well-known/openid-configuration')) && w.status === 200),
    'discovery: authorization server metadata fetched',
  );
  const reg = wire.find((w) => w.method === 'POST' && w.path === '/register');
  if (!tap.check(reg && reg.status === 201 && provider.clientInformation()?.client_id, 'dynamic client registration (201, client_id)', reg ? `status ${reg.status}` : 'no /register call')) return;
  const clientId = provider.clientInformation().client_id;
  if (!tap.check(firstErr instanceof UnauthorizedError, 'first connect ends in UnauthorizedError (redirect needed)', firstErr?.stack || firstErr?.message)) return;
  const authUrl = provider.authUrls[0] ? new URL(provider.authUrls[0]) : undefined;
  tap.check(
    authUrl && authUrl.searchParams.get('code_challenge_method') === 'S256' && authUrl.searchParams.get('code_challenge') && authUrl.searchParams.get('resource') === mcpUrl.href,
    'authorization request carries PKCE S256 and resource = the MCP URL',
    authUrl?.search,
  );
  const callback = provider.lastCallback;
  if (!tap.check(!!provider.code, 'login + consent pages driven (notes:read only), code received at redirect_uri', callback?.href)) return;
  tap.check(callback.searchParams.get('iss') === issuer, 'authorization response carries iss = issuer (RFC 9207)', callback.searchParams.get('iss'));

  // 2. finishAuth with the callback's parameters. A forged iss is refused
  // before the code is redeemed; the real one is accepted.
  const forged = new URLSearchParams(callback.searchParams);
  forged.set('iss', 'https://attacker.example');
  const tokenCallsBefore = wire.filter((w) => w.path === '/token').length;
  let forgedErr;
  try {
    await transport.finishAuth(forged);
  } catch (e) {
    forgedErr = e;
  }
  tap.check(
    forgedErr instanceof IssuerMismatchError && forgedErr.kind === 'authorization_response' && wire.filter((w) => w.path === '/token').length === tokenCallsBefore,
    'finishAuth with a forged iss fails with IssuerMismatchError before any token request',
    forgedErr ? `${forgedErr.constructor.name}: ${forgedErr.message}` : 'no error',
  );
  try {
    await transport.finishAuth(callback.searchParams);
    tap.ok('finishAuth(callbackParams): iss validated, code exchanged');
  } catch (e) {
    tap.notOk('finishAuth(callbackParams): iss validated, code exchanged', e.stack || e.message);
    return;
  }
  const firstTokens = provider.tokens();
  tap.check(firstTokens?.access_token && firstTokens?.refresh_token, 'token response has access_token and refresh_token', JSON.stringify(Object.keys(firstTokens || {})));
  await client.close().catch(() => {});

  // 3. Connect with the token, in the era under test.
  transport = newTransport();
  client = newClient();
  const connectFrom = wire.length;
  try {
    await client.connect(transport);
    tap.ok('connect with the access token');
  } catch (e) {
    tap.notOk('connect with the access token', e.stack || e.message);
    return;
  }
  const version = client.getNegotiatedProtocolVersion();
  if (pinned) {
    tap.check(version === modern, `negotiated protocol version is ${modern}`, version);
    const connectCalls = mcpCalls(connectFrom);
    tap.check(
      connectCalls.some((w) => /"method":"server\/discover"/.test(w.body)) && !connectCalls.some((w) => /"method":"initialize"/.test(w.body)),
      'connect used server/discover, no initialize',
      connectCalls.map((w) => w.body.slice(0, 80)).join(' | '),
    );
  } else {
    tap.check(version && version < modern, 'default negotiation: a 2025-era version through initialize', version);
    tap.check(!!transport.sessionId, 'default negotiation: the server gave the client a session (Mcp-Session-Id)', transport.sessionId);
  }

  try {
    const tools = await client.listTools();
    const names = tools.tools.map((t) => t.name);
    tap.check(['whoami', 'note_save', 'note_get'].every((n) => names.includes(n)), 'tools/list includes whoami, note_save, note_get', names.join(','));
  } catch (e) {
    tap.notOk('tools/list', e.message);
  }
  try {
    const r = await client.callTool({ name: 'whoami', arguments: {} });
    const who = structured(r);
    tap.check(!r.isError && who?.user === user && who?.client_id === clientId && who?.scopes?.join(' ') === 'notes:read', 'whoami: user, client_id and the narrow scope notes:read', JSON.stringify(who));
  } catch (e) {
    tap.notOk('whoami', e.message);
  }

  // 4. Step-up: note_save needs notes:write. The 403 names what the call
  // needs and what the token has; the SDK authorizes again (all ticked now).
  provider.grantScopes = undefined;
  const stepFrom = wire.length;
  const authsBefore = provider.authUrls.length;
  let stepErr;
  try {
    await client.callTool({ name: 'note_save', arguments: { title: 'ts-client-v2', body: 'saved after a step-up', tags: ['e2e'] } });
  } catch (e) {
    stepErr = e;
  }
  const forbidden = mcpCalls(stepFrom).find((w) => w.status === 403);
  const challenged = /scope="([^"]*)"/.exec(forbidden?.wwwAuthenticate || '')?.[1]?.split(' ') ?? [];
  tap.check(
    /error="insufficient_scope"/.test(forbidden?.wwwAuthenticate || '') && challenged.includes('notes:write') && challenged.includes('notes:read'),
    'note_save with notes:read: 403 insufficient_scope naming notes:write and the granted notes:read',
    forbidden?.wwwAuthenticate || summary(mcpCalls(stepFrom)),
  );
  const stepUrl = provider.authUrls[authsBefore] ? new URL(provider.authUrls[authsBefore]) : undefined;
  const asked = stepUrl?.searchParams.get('scope')?.split(' ') ?? [];
  tap.check(asked.includes('notes:write') && asked.includes('notes:read'), 'the SDK re-authorizes for the union (notes:read and notes:write)', stepUrl?.search);
  tap.check(stepErr instanceof UnauthorizedError, 'the step-up ends in UnauthorizedError (redirect needed)', stepErr ? stepErr.stack || stepErr.message : 'the call succeeded without a new authorization');
  try {
    await transport.finishAuth(provider.lastCallback.searchParams);
    tap.ok('finishAuth after the step-up');
  } catch (e) {
    tap.notOk('finishAuth after the step-up', e.stack || e.message);
    return;
  }
  const stepTokens = provider.tokens();
  const granted = (stepTokens?.scope || '').split(' ');
  tap.check(granted.includes('notes:read') && granted.includes('notes:write'), 'the new token holds both notes:read and notes:write', stepTokens?.scope);

  let noteId;
  try {
    const r = await client.callTool({ name: 'note_save', arguments: { title: 'ts-client-v2', body: 'saved after a step-up', tags: ['e2e'] } });
    noteId = structured(r)?.id;
    tap.check(!r.isError && noteId, 'note_save after the step-up returns an id', JSON.stringify(r));
  } catch (e) {
    tap.notOk('note_save after the step-up', e.stack || e.message);
  }
  if (noteId) {
    try {
      const r = await client.callTool({ name: 'note_get', arguments: { id: noteId } });
      const n = structured(r);
      tap.check(!r.isError && n?.id === noteId && n?.title === 'ts-client-v2' && n?.body === 'saved after a step-up', 'note_get returns the saved note', JSON.stringify(n));
    } catch (e) {
      tap.notOk('note_get', e.message);
    }
  }
  try {
    const who = structured(await client.callTool({ name: 'whoami', arguments: {} }));
    tap.check(who?.scopes?.includes('notes:read') && who?.scopes?.includes('notes:write'), 'whoami after the step-up: both scopes', JSON.stringify(who));
  } catch (e) {
    tap.notOk('whoami after the step-up', e.message);
  }

  // 5. Let the access token expire: the SDK must refresh by itself.
  const last = provider.savedTokens[provider.savedTokens.length - 1];
  const ttl = Number(last.tokens.expires_in) || 3;
  if (!tap.check(ttl <= 60, 'access token lifetime is short (server runs with --access-token-ttl 3s)', `expires_in=${last.tokens.expires_in}`)) return;
  const waitMs = Math.max(0, last.at + ttl * 1000 + 1500 - Date.now());
  console.log(`# waiting ${Math.round(waitMs / 100) / 10}s for the access token (expires_in=${last.tokens.expires_in}) to expire`);
  await sleep(waitMs);
  const refreshFrom = wire.length;
  const refreshTokenBefore = provider.tokens()?.refresh_token;
  try {
    const r = await client.callTool({ name: 'note_get', arguments: { id: noteId } });
    tap.check(!r.isError && structured(r)?.id === noteId, 'a call after the access token expired succeeds', JSON.stringify(structured(r)));
  } catch (e) {
    tap.notOk('a call after the access token expired succeeds', e.stack || e.message);
  }
  const after = wire.slice(refreshFrom);
  tap.check(after.some((w) => w.path === '/mcp' && w.status === 401), 'the expired access token is answered 401', summary(after));
  const refreshCall = after.find((w) => w.path === '/token' && /grant_type=refresh_token/.test(w.body));
  tap.check(refreshCall && refreshCall.status === 200, 'the SDK refreshed by itself (grant_type=refresh_token -> 200)', refreshCall ? `status ${refreshCall.status}` : 'no refresh request');
  const rotated = provider.tokens()?.refresh_token;
  tap.check(rotated && rotated !== refreshTokenBefore, 'the refresh token rotated');

  // 6. The era held for the whole run.
  const posts = mcpCalls().filter((w) => w.method === 'POST' && w.status === 200);
  if (pinned) {
    const bad = posts.filter((w) => w.requestHeaders.get('mcp-protocol-version') !== modern || w.sessionId);
    tap.check(bad.length === 0, `every /mcp POST carried Mcp-Protocol-Version ${modern} and no response opened a session`, summary(bad));
  } else {
    tap.check(posts.slice(1).every((w) => w.requestHeaders.get('mcp-session-id')), 'every /mcp POST after initialize carried the session id', summary(posts));
  }
  await client.close().catch(() => {});
}

try {
  await main();
} catch (e) {
  tap.notOk('unexpected exception', e.stack || e.message);
}
tap.finish(name);
