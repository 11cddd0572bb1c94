// What three mcpd replicas on one PostgreSQL must do that one process does
// by itself, checked over HTTP against the real replicas and the HAProxy in
// front of them. run.sh starts everything and runs this with Node 22.
//
//   1. concurrent refreshes of one refresh token on two replicas get the
//      same tokens (the grace window across processes), round after round;
//   2. `mcpd client revoke ID --database URL` is refused with 401 by every
//      replica within one second;
//   3. a run of grants through the balancer (register, log in, save a note,
//      refresh) in which one replica is SIGKILLed part way: every grant
//      whose tokens were handed out still works afterwards on the replicas
//      left, and the run goes on.
//
// Environment:
//   MCPD_URL            the balancer (the replicas' issuer)
//   MCPD_REPLICAS       the replicas' own URLs, comma-separated
//   MCPD_REPLICA_PIDS   their process ids, in the same order
//   MCPD_BIN, MCPD_DATABASE   for `mcpd client revoke --database`
//   MCPD_E2E_USER, MCPD_E2E_PASSWORD
//   MCPD_REPLICAS_GRANTS      grants in the kill run (default 24)
// Output: `ok - …` / `not ok - …` lines; exit status 1 when any failed.

import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { driveConsent } from '../clients/lib/consent.mjs';
import { Tap, sleep } from '../clients/lib/oauth-client.mjs';

const lb = process.env.MCPD_URL.replace(/\/+$/, '');
const replicas = process.env.MCPD_REPLICAS.split(',');
const pids = process.env.MCPD_REPLICA_PIDS.split(',').map(Number);
const user = process.env.MCPD_E2E_USER || 'alice';
const grantsInRun = Number(process.env.MCPD_REPLICAS_GRANTS || 24);
const redirectUri = 'http://127.0.0.1:47615/callback';

const tap = new Tap();
const ok = (step) => tap.ok(step);
const notOk = (step, why) => tap.notOk(step, why);
const check = (cond, step, why) => tap.check(cond, step, why);
const b64url = (buf) => buf.toString('base64url');

// withRetry repeats fn while the balancer answers 502/503 or the
// connection fails, as a client does after a gateway error: a replica that
// died with the request in flight.
async function withRetry(fn) {
  let last;
  for (let i = 0; i < 5; i++) {
    try {
      const res = await fn();
      if (res.status !== 502 && res.status !== 503) return res;
      last = new Error(`HTTP ${res.status}`);
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw last;
}

async function postForm(base, path, form) {
  const res = await withRetry(() =>
    fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) }),
  );
  return { status: res.status, body: await res.json().catch(() => ({})) };
}

async function register(name) {
  const res = await withRetry(() =>
    fetch(`${lb}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: name,
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }),
    }),
  );
  const body = await res.json();
  if (res.status !== 201) throw new Error(`register: ${res.status} ${JSON.stringify(body)}`);
  return body.client_id;
}

// login runs the authorization code flow with PKCE through the balancer
// and returns the token response.
async function login(clientId) {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const u = new URL(`${lb}/authorize`);
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: clientId, redirect_uri: redirectUri, code_challenge: challenge,
    code_challenge_method: 'S256', scope: 'notes:read notes:write', resource: `${lb}/mcp`,
  })) u.searchParams.set(k, v);
  let r;
  for (let i = 0; ; i++) {
    try {
      r = await driveConsent(u.toString(), { username: user });
      break;
    } catch (e) {
      if (i >= 3) throw e;
      await sleep(200); // a replica went away under the pages: start again
    }
  }
  const code = new URL(r.location).searchParams.get('code');
  if (!code) throw new Error(`authorization ended in ${r.location}`);
  const tok = await postForm(lb, '/token', {
    grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: clientId, code_verifier: verifier, resource: `${lb}/mcp`,
  });
  if (tok.status !== 200) throw new Error(`code exchange: ${tok.status} ${JSON.stringify(tok.body)}`);
  return tok.body;
}

const refreshAt = (base, clientId, refreshToken) =>
  postForm(base, '/token', { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId });

// rpc sends one stateless JSON-RPC request to base/mcp and returns the
// status and the JSON-RPC response (from JSON or an event stream).
async function rpc(base, token, method, params, retry = true) {
  const send = () =>
    fetch(`${base}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-06-18',
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
  const res = retry ? await withRetry(send) : await send();
  const text = await res.text();
  let msg;
  if ((res.headers.get('content-type') || '').includes('text/event-stream')) {
    for (const line of text.split('\n')) if (line.startsWith('data:')) msg = JSON.parse(line.slice(5));
  } else if (text) {
    try {
      msg = JSON.parse(text);
    } catch {}
  }
  return { status: res.status, msg };
}

const initialize = (base, token, retry) =>
  rpc(base, token, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'mcpd-replicas-e2e', version: '1' } }, retry);

async function tool(base, token, name, args) {
  const r = await rpc(base, token, 'tools/call', { name, arguments: args });
  if (r.status !== 200 || !r.msg?.result || r.msg.result.isError) throw new Error(`${name}: ${r.status} ${JSON.stringify(r.msg)}`);
  return r.msg.result.structuredContent;
}

async function concurrentRefresh() {
  const clientId = await register('replicas e2e: concurrent refresh');
  let tok = await login(clientId);
  let same = 0;
  const rounds = 6;
  for (let round = 0; round < rounds; round++) {
    const a = replicas[round % replicas.length];
    const b = replicas[(round + 1) % replicas.length];
    const [x, y] = await Promise.all([refreshAt(a, clientId, tok.refresh_token), refreshAt(b, clientId, tok.refresh_token)]);
    if (x.status !== 200 || y.status !== 200) {
      notOk(`concurrent refresh round ${round}: both replicas answer 200`, `${x.status} ${JSON.stringify(x.body)} / ${y.status} ${JSON.stringify(y.body)}`);
      return;
    }
    if (x.body.access_token === y.body.access_token && x.body.refresh_token === y.body.refresh_token) same++;
    tok = x.body;
  }
  check(same === rounds, `concurrent refreshes of one token on two replicas get the same tokens (${same} of ${rounds} rounds)`);
  const r = await initialize(replicas[2 % replicas.length], tok.access_token);
  check(r.status === 200, 'the tokens of the last concurrent refresh work on a third replica', `status ${r.status}`);
}

async function revokeEverywhere() {
  const clientId = await register('replicas e2e: revoke');
  const tok = await login(clientId);
  for (const base of replicas) {
    for (let i = 0; i < 2; i++) {
      // The second use may be answered from the replica's token cache.
      const r = await initialize(base, tok.access_token);
      if (r.status !== 200) {
        notOk(`before revoke: ${base} accepts the token`, `status ${r.status}`);
        return;
      }
    }
  }
  const out = spawnSync(process.env.MCPD_BIN, ['client', 'revoke', clientId, '--database', process.env.MCPD_DATABASE], { encoding: 'utf8' });
  const revoked = Date.now();
  if (!check(out.status === 0, `mcpd client revoke ${clientId} --database (no admin socket)`, out.stderr)) return;
  const took = await Promise.all(
    replicas.map(async (base) => {
      for (;;) {
        const r = await initialize(base, tok.access_token, false);
        const ms = Date.now() - revoked;
        if (r.status === 401) return ms;
        if (ms > 1000) return Infinity;
        await sleep(5);
      }
    }),
  );
  check(
    took.every((ms) => ms <= 1000),
    `every replica answers 401 within 1 s of mcpd client revoke (${took.map((ms) => (ms === Infinity ? 'never' : `${ms} ms`)).join(', ')})`,
  );
}

async function killRun() {
  const victim = replicas.length - 1;
  const killAt = Math.floor(grantsInRun / 3);
  const acked = [];
  let killed = false;
  let failed = 0;
  for (let i = 0; i < grantsInRun; i++) {
    if (i === killAt) {
      // In the middle of this grant's requests, whichever is in flight.
      setTimeout(() => {
        process.kill(pids[victim], 'SIGKILL');
        killed = true;
        console.log(`# SIGKILL replica ${victim + 1} (pid ${pids[victim]}) during grant ${i}`);
      }, 40);
    }
    try {
      const clientId = await register(`replicas e2e: kill run ${i}`);
      const tok = await login(clientId);
      const saved = await tool(lb, tok.access_token, 'note_save', { title: `grant ${i}`, body: 'kept across a replica kill' });
      const next = await refreshAt(lb, clientId, tok.refresh_token);
      if (next.status !== 200) throw new Error(`refresh: ${next.status} ${JSON.stringify(next.body)}`);
      acked.push({ i, clientId, tok: next.body, note: saved.id });
    } catch (e) {
      failed++;
      console.log(`# grant ${i} failed: ${e.message}`);
    }
  }
  check(killed && failed === 0, `${grantsInRun} grants through the balancer with replica ${victim + 1} SIGKILLed after ${killAt}: ${acked.length} acknowledged, ${failed} failed`);
  // Every acknowledged grant works on the replicas left: its refresh token
  // rotates (its access token has expired by now: the replicas run with a
  // 3 s lifetime), and the new access token reads the grant's note.
  let lost = 0;
  for (const g of acked) {
    try {
      const next = await refreshAt(lb, g.clientId, g.tok.refresh_token);
      if (next.status !== 200) throw new Error(`refresh: ${next.status} ${JSON.stringify(next.body)}`);
      const note = await tool(lb, next.body.access_token, 'note_get', { id: g.note });
      if (note.title !== `grant ${g.i}`) throw new Error(`note_get: ${JSON.stringify(note)}`);
    } catch (e) {
      lost++;
      console.log(`# grant ${g.i} lost: ${e.message}`);
    }
  }
  check(lost === 0, `no acknowledged grant lost: ${acked.length - lost} of ${acked.length} still work after the kill`);
  for (let r = 0; r < replicas.length; r++) {
    if (r === victim) continue;
    const res = await fetch(`${replicas[r]}/healthz`).catch(() => null);
    check(res?.status === 200, `replica ${r + 1} keeps serving`);
  }
}

const steps = [
  ['concurrent refresh on two replicas', concurrentRefresh],
  ['revoke on the database', revokeEverywhere],
  ['SIGKILL a replica mid-run', killRun],
];
for (const [name, fn] of steps) {
  try {
    await fn();
  } catch (e) {
    notOk(name, e.stack || e.message);
  }
}
tap.finish('replicas');
