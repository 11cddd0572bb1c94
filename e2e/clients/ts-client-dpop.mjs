// The TypeScript SDK 2.x client (@modelcontextprotocol/client, pinned in
// e2e/node) with a DpopSession (SEP-1932, RFC 9449) against a real
// `mcpd serve`. Run with Node 22 from e2e/node; run.sh does it, once against
// the default server and once against a server with --dpop-nonce.
//
// Story: discovery -> dynamic registration -> PKCE authorization (login and
// consent driven over HTTP) -> token request with a DPoP proof -> token_type
// DPoP -> tools/list, whoami, note_save/note_get, every /mcp request with
// `Authorization: DPoP` and a fresh proof -> the access token expires (short
// lifetime) -> the SDK refreshes with a proof of the same key -> the new
// token is still DPoP and calls continue -> the bound token presented as a
// Bearer token is refused. With MCPD_E2E_EXPECT_NONCE=1 the server requires
// nonces: the client starts each leg with an old nonce, so the token endpoint
// answers use_dpop_nonce and /mcp answers 401 use_dpop_nonce, and the SDK
// retries with the server's nonce by itself.
//
// Environment: MCPD_URL, MCPD_E2E_USER, MCPD_E2E_PASSWORD (see ts-client.mjs),
// MCPD_E2E_EXPECT_NONCE=1 for the nonce run.
// Output: one `ok - <step>` / `not ok - <step>` line per step; exit status 1
// when any step failed.

import { Client, DpopSession, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';
import { DrivenProvider, Tap, recordingFetch, sleep, structured } from './lib/oauth-client.mjs';

const issuer = (process.env.MCPD_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const mcpUrl = new URL(`${issuer}/mcp`);
const user = process.env.MCPD_E2E_USER || 'alice';
const expectNonce = process.env.MCPD_E2E_EXPECT_NONCE === '1';
const tag = expectNonce ? 'ts-client-dpop-nonce' : 'ts-client-dpop';

const tap = new Tap();
const ok = (step) => tap.ok(step);
const notOk = (step, why) => tap.notOk(step, why);
const check = (cond, step, why) => tap.check(cond, step, why);

// Every HTTP exchange, with what the request carried. With an issuer that
// has a path (run.sh MCPD_E2E_ISSUER_PATH), paths on the wire are compared
// without it: /mcpd/token is /token.
const wire = [];
const dpopFetch = recordingFetch(wire, issuer, async (w, res) => {
  w.scheme = (w.requestHeaders.get('authorization') || '').split(' ')[0];
  w.proof = w.requestHeaders.get('dpop') || '';
  w.wwwAuthenticate ||= '';
  w.nonce = res.headers.get('dpop-nonce') || '';
  if (res.status === 400 && w.path === '/token') {
    w.error = (await res.clone().json().catch(() => ({})))?.error;
  }
});

function jwtPart(jwt, i) {
  try {
    return JSON.parse(Buffer.from(jwt.split('.')[i], 'base64url').toString());
  } catch {
    return undefined;
  }
}

// DpopProvider is the driven public client with a DPoP key: the SDK signs
// a proof with session for every token and /mcp request.
class DpopProvider extends DrivenProvider {
  constructor(session) {
    // Nothing listens here: the consent driver reads the Location header instead.
    super({ redirectUrl: 'http://127.0.0.1:47614/callback', user, clientName: `mcpd e2e ${tag}` });
    this.session = session;
  }
  dpop() {
    return this.session;
  }
}

async function main() {
  const session = await DpopSession.create();
  const provider = new DpopProvider(session);
  const newTransport = () => new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: dpopFetch });

  const meta = await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json();
  check(Array.isArray(meta.dpop_signing_alg_values_supported) && meta.dpop_signing_alg_values_supported.includes(session.alg), `AS metadata lists dpop_signing_alg_values_supported with ${session.alg}`, JSON.stringify(meta.dpop_signing_alg_values_supported));
  const prm = await (await fetch(`${issuer}/.well-known/oauth-protected-resource/mcp`)).json();
  check(Array.isArray(prm.dpop_signing_alg_values_supported), 'PRM lists dpop_signing_alg_values_supported', JSON.stringify(prm));

  // 1. First connect: 401 -> discovery -> DCR -> authorization (driven).
  let transport = newTransport();
  let client = new Client({ name: `mcpd-e2e-${tag}`, version: '1.0.0' });
  let firstErr;
  try {
    await client.connect(transport);
  } catch (e) {
    firstErr = e;
  }
  const first401 = wire.find((w) => w.path === '/mcp' && w.status === 401);
  check(first401 && /(^|, )DPoP /.test(first401.wwwAuthenticate) && /algs="/.test(first401.wwwAuthenticate), 'unauthenticated /mcp challenges with DPoP algs next to Bearer', first401?.wwwAuthenticate);
  if (!check(firstErr instanceof UnauthorizedError && provider.code, 'registration and authorization driven, code received', firstErr?.message)) return;

  // 2. Token request with a proof. mcpd hands out its nonce with every
  // answer (RFC 9449 §8.2), so a client that kept the one it saw last sends
  // it unasked; an old nonce, as after a rotation, must be answered with
  // use_dpop_nonce and the SDK must retry with the new one.
  if (expectNonce) session.rememberNonce(issuer, 'an-old-nonce');
  const before = wire.length;
  try {
    await transport.finishAuth(provider.lastCallback.searchParams);
    ok('token exchange (finishAuth)');
  } catch (e) {
    notOk('token exchange (finishAuth)', e.message);
    return;
  }
  const tokenCalls = wire.slice(before).filter((w) => w.path === '/token');
  const exchange = tokenCalls[tokenCalls.length - 1];
  check(exchange?.status === 200 && exchange.proof, 'the code exchange carries a DPoP proof', JSON.stringify(tokenCalls.map((w) => [w.status, !!w.proof])));
  const hdr = exchange?.proof ? jwtPart(exchange.proof, 0) : undefined;
  check(hdr?.typ === 'dpop+jwt' && hdr?.jwk && !hdr.jwk.d, 'the proof is a dpop+jwt with a public jwk', JSON.stringify(hdr));
  if (expectNonce) {
    check(tokenCalls.length >= 2 && tokenCalls[0].status === 400 && tokenCalls[0].error === 'use_dpop_nonce' && tokenCalls[0].nonce, 'nonce: /token answered use_dpop_nonce with a DPoP-Nonce first', JSON.stringify(tokenCalls.map((w) => [w.status, w.error])));
    check(jwtPart(exchange.proof, 1)?.nonce === tokenCalls[0].nonce, "nonce: the SDK's retry carries the server's nonce");
  }
  const firstTokens = provider.tokens();
  check(firstTokens?.token_type === 'DPoP', 'token_type is DPoP', firstTokens?.token_type);
  check(firstTokens?.access_token && firstTokens?.refresh_token, 'access_token and refresh_token issued');
  await client.close().catch(() => {});

  // 3. Reconnect: every /mcp request is DPoP with a proof.
  if (expectNonce) session.rememberNonce(issuer, 'an-old-nonce');
  transport = newTransport();
  client = new Client({ name: `mcpd-e2e-${tag}`, version: '1.0.0' });
  const mcpStart = wire.length;
  try {
    await client.connect(transport);
    ok('connect with the DPoP-bound token');
  } catch (e) {
    notOk('connect with the DPoP-bound token', e.message);
    return;
  }
  let clientId = provider.clientInformation()?.client_id;
  try {
    const tools = await client.listTools();
    check(tools.tools.some((t) => t.name === 'whoami'), 'tools/list');
    const who = structured(await client.callTool({ name: 'whoami', arguments: {} }));
    check(who?.user === user && who?.client_id === clientId, 'whoami: user and client_id match', JSON.stringify(who));
    const saved = structured(await client.callTool({ name: 'note_save', arguments: { title: tag, body: 'bound to a key' } }));
    const got = structured(await client.callTool({ name: 'note_get', arguments: { id: saved?.id } }));
    check(got?.body === 'bound to a key', 'note round trip (note_save, note_get)', JSON.stringify(got));
  } catch (e) {
    notOk('tools over DPoP', e.message);
  }
  const mcpCalls = wire.slice(mcpStart).filter((w) => w.path === '/mcp');
  const ok200 = mcpCalls.filter((w) => w.status >= 200 && w.status < 300);
  check(ok200.length > 0 && ok200.every((w) => w.scheme === 'DPoP' && w.proof), 'every successful /mcp request used Authorization: DPoP with a proof', JSON.stringify(mcpCalls.map((w) => [w.status, w.scheme, !!w.proof])));
  const jtis = ok200.map((w) => jwtPart(w.proof, 1)?.jti);
  check(new Set(jtis).size === jtis.length, 'every proof has its own jti');
  if (expectNonce) {
    const i = mcpCalls.findIndex((w) => w.status === 401 && /use_dpop_nonce/.test(w.wwwAuthenticate));
    check(i >= 0 && mcpCalls[i].nonce && mcpCalls[i + 1]?.status < 300, 'nonce: /mcp answered 401 use_dpop_nonce first and the retry went through', JSON.stringify(mcpCalls.map((w) => [w.status, w.nonce ? 'nonce' : ''])));
  }

  // 4. Let the access token expire: the SDK refreshes with a proof of the same key.
  const last = provider.savedTokens[provider.savedTokens.length - 1];
  const ttl = Number(last.tokens.expires_in) || 3;
  if (!check(ttl <= 60, 'access token lifetime is short (server runs with --access-token-ttl 3s)', `expires_in=${last.tokens.expires_in}`)) return;
  await sleep(Math.max(0, last.at + ttl * 1000 + 2500 - Date.now()));
  const refreshStart = wire.length;
  try {
    const w = structured(await client.callTool({ name: 'whoami', arguments: {} }));
    check(w?.user === user, 'call after access-token expiry succeeds', JSON.stringify(w));
  } catch (e) {
    notOk('call after access-token expiry succeeds', e.message);
  }
  const refreshCall = wire.slice(refreshStart).filter((w) => w.path === '/token' && /grant_type=refresh_token/.test(w.body) && w.status === 200).pop();
  check(refreshCall && refreshCall.proof, 'the SDK refreshed by itself, with a DPoP proof', JSON.stringify(wire.slice(refreshStart).map((w) => [w.path, w.status])));
  const refreshed = provider.tokens();
  check(refreshed?.token_type === 'DPoP' && refreshed.access_token !== firstTokens.access_token && refreshed.refresh_token !== firstTokens.refresh_token, 'the refresh keeps the binding: token_type DPoP, rotated tokens', refreshed?.token_type);
  check(refreshCall?.proof && jwtPart(refreshCall.proof, 0)?.jwk?.x === hdr?.jwk?.x, 'the refresh proof is signed by the same key');

  // 5. The bound token is worth nothing as a bearer token.
  const stolen = await fetch(mcpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${refreshed.access_token}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
  });
  check(stolen.status === 401 && /invalid_token/.test(stolen.headers.get('www-authenticate') || ''), 'the DPoP-bound token sent as Bearer is refused with 401 invalid_token', `${stolen.status} ${stolen.headers.get('www-authenticate')}`);
  await client.close().catch(() => {});
}

try {
  await main();
} catch (e) {
  notOk('unexpected exception', e.stack || e.message);
}
tap.finish(tag);
