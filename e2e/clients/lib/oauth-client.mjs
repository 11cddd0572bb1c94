// Shared pieces of the e2e clients that drive a TypeScript SDK against a
// real `mcpd serve`: TAP-like step reporting, a fetch that records every HTTP
// exchange, and an OAuthClientProvider whose "browser" is lib/consent.mjs.
// The provider implements the interface of @modelcontextprotocol/sdk 1.x and
// @modelcontextprotocol/client 2.x alike (2.x passes an optional context
// argument that a single-server client can ignore).

import { driveConsent } from './consent.mjs';

// Tap prints one `ok - <step>` / `not ok - <step> # why` line per step.
export class Tap {
  constructor() {
    this.failures = 0;
  }
  ok(step) {
    console.log(`ok - ${step}`);
  }
  notOk(step, why) {
    this.failures++;
    console.log(`not ok - ${step}${why ? ` # ${String(why).replace(/\s+/g, ' ')}` : ''}`);
  }
  check(cond, step, why) {
    if (cond) this.ok(step);
    else this.notOk(step, why);
    return !!cond;
  }
  // finish prints the closing comment and exits 0 or 1.
  finish(name) {
    if (this.failures > 0) {
      console.log(`# ${name}: ${this.failures} failed step(s)`);
      process.exit(1);
    }
    console.log(`# ${name}: all steps passed`);
    process.exit(0);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// relativeTo returns a function that strips the path of issuer from a
// request path: with an issuer that has a path (run.sh
// MCPD_E2E_ISSUER_PATH=/mcpd, behind nginx) /mcpd/token reads as /token.
export function relativeTo(issuer) {
  const issuerPath = new URL(issuer).pathname.replace(/\/+$/, '');
  return (p) => (issuerPath && p.startsWith(`${issuerPath}/`) ? p.slice(issuerPath.length) : p);
}

// recordingFetch returns a fetch that appends every exchange to wire:
// method, path (relative to issuer, when given), request body and headers,
// status, and the response headers that matter for the assertions.
// annotate, when given, adds a client's own fields to an entry before it is
// recorded: annotate(entry, res), awaited, with res still unread.
export function recordingFetch(wire, issuer, annotate) {
  const relative = issuer ? relativeTo(issuer) : (p) => p;
  return async (input, init = {}) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    let body = init.body;
    if (body instanceof URLSearchParams) body = body.toString();
    const res = await fetch(input, init);
    const entry = {
      at: Date.now(),
      method: (init.method || 'GET').toUpperCase(),
      url,
      path: relative(new URL(url).pathname),
      body: typeof body === 'string' ? body : '',
      requestHeaders: new Headers(init.headers || {}),
      status: res.status,
      wwwAuthenticate: res.headers.get('www-authenticate'),
      sessionId: res.headers.get('mcp-session-id'),
    };
    if (annotate) await annotate(entry, res);
    wire.push(entry);
    return res;
  };
}

// structured returns a tool result's structured content (or its JSON text).
export function structured(result) {
  if (result?.structuredContent) return result.structuredContent;
  const text = result?.content?.find((c) => c.type === 'text')?.text;
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

// DrivenProvider is an OAuthClientProvider for a public client (DCR, PKCE)
// whose authorization step is lib/consent.mjs signing in as user and
// allowing. grantScopes, when set, is the subset of scopes ticked on the
// consent page (the rest are unticked), for a narrower grant.
export class DrivenProvider {
  constructor({ redirectUrl, user, clientName }) {
    this._redirectUrl = redirectUrl;
    this._user = user;
    this._clientName = clientName;
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this._discovery = undefined;
    this.savedTokens = []; // every saveTokens call, in order
    this.authUrls = []; // every redirectToAuthorization URL
    this.callbacks = []; // every redirect back to redirect_uri (URL)
    this.interactive = true; // false: a person would have to log in again; record only
    this.grantScopes = undefined;
  }
  get redirectUrl() {
    return this._redirectUrl;
  }
  get clientMetadata() {
    return {
      client_name: this._clientName,
      redirect_uris: [this._redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() {
    return this._client;
  }
  saveClientInformation(info) {
    this._client = info;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
    this.savedTokens.push({ at: Date.now(), tokens });
  }
  saveCodeVerifier(v) {
    this._verifier = v;
  }
  codeVerifier() {
    if (!this._verifier) throw new Error('no code verifier saved');
    return this._verifier;
  }
  saveDiscoveryState(s) {
    this._discovery = s;
  }
  discoveryState() {
    return this._discovery;
  }
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'client') this._client = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this._discovery = undefined;
  }
  async redirectToAuthorization(url) {
    this.authUrls.push(url.toString());
    if (!this.interactive) return;
    const r = await driveConsent(url.toString(), { username: this._user, scopes: this.grantScopes });
    this.callbacks.push(new URL(r.location));
  }
  // lastCallback is the most recent redirect back to the client.
  get lastCallback() {
    return this.callbacks[this.callbacks.length - 1];
  }
  // code is the authorization code of the last callback.
  get code() {
    return this.lastCallback?.searchParams.get('code') ?? undefined;
  }
}
