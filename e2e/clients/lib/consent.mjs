// Drives mcpd's login and consent pages over plain HTTP, the way a person in
// a browser would: GET the authorization URL, fill in the login form, tick the
// consent form's Allow, and stop at the redirect that leaves the issuer (the
// client's redirect_uri carrying code, state and iss).
//
// Nothing about the server's paths is hardcoded: every POST goes to the form's
// own `action`, and every hidden field is copied from the page (csrf_token,
// request_id, ...). A small cookie jar carries the session between requests.
//
// Library use:   import { driveConsent } from './lib/consent.mjs'
// Command line:  node consent.mjs [--follow] [--deny] [--remember] URL
//   user/password from MCPD_E2E_USER / MCPD_E2E_PASSWORD (default alice / from env),
//   prints the final redirect Location on stdout; with --follow it also GETs
//   that Location (for clients that listen on their redirect_uri).

export class CookieJar {
  constructor() {
    this.cookies = new Map(); // "host|name" -> {name, value, host, path}
  }

  store(url, res) {
    const host = new URL(url).host;
    const list = typeof res.headers.getSetCookie === 'function' ? res.headers.getSetCookie() : [];
    for (const line of list) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        const key = k.trim().toLowerCase();
        if (key === 'path') path = v.trim() || '/';
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(v) < Date.now()) expired = true;
      }
      const id = `${host}|${name}`;
      if (expired || value === '') this.cookies.delete(id);
      else this.cookies.set(id, { name, value, host, path });
    }
  }

  header(url) {
    const u = new URL(url);
    const out = [];
    for (const c of this.cookies.values()) {
      if (c.host === u.host && u.pathname.startsWith(c.path)) out.push(`${c.name}=${c.value}`);
    }
    return out.join('; ');
  }
}

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#39': "'", '#34': '"', '#x27': "'", '#x2F': '/', '#43': '+', '#x3D': '=', '#61': '=' };

export function unescapeHTML(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (m, e) => {
    if (e[0] === '#') {
      const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return Number.isFinite(code) ? String.fromCodePoint(code) : m;
    }
    return ENTITIES[e] ?? m;
  });
}

function attrs(tag) {
  const out = {};
  const re = /([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  // skip the element name
  const body = tag.replace(/^<\s*[a-zA-Z]+/, '').replace(/\/?>$/, '');
  let m;
  while ((m = re.exec(body))) {
    out[m[1].toLowerCase()] = unescapeHTML(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

// parseForms returns every <form> with its method, action and controls.
export function parseForms(html) {
  const forms = [];
  const formRe = /<form\b[^>]*>([\s\S]*?)<\/form>/gi;
  let m;
  while ((m = formRe.exec(html))) {
    const open = m[0].match(/^<form\b[^>]*>/i)[0];
    const a = attrs(open);
    const inputs = [...m[1].matchAll(/<input\b[^>]*>/gi)].map((x) => attrs(x[0]));
    const buttons = [...m[1].matchAll(/<button\b[^>]*>/gi)].map((x) => attrs(x[0]));
    forms.push({ method: (a.method || 'get').toLowerCase(), action: a.action ?? '', inputs, buttons });
  }
  return forms;
}

function isRedirect(status) {
  return status >= 300 && status < 400;
}

/**
 * driveConsent follows an authorization URL through login and consent.
 * Returns { location, url } where location is the absolute redirect URL that
 * leaves the issuer (to the client's redirect_uri). Throws on any unexpected page.
 */
export async function driveConsent(authorizeUrl, opts = {}) {
  const username = opts.username ?? process.env.MCPD_E2E_USER ?? 'alice';
  const password = opts.password ?? process.env.MCPD_E2E_PASSWORD;
  if (password === undefined) throw new Error('driveConsent: no password (MCPD_E2E_PASSWORD)');
  const decision = opts.decision ?? 'allow';
  const jar = opts.jar ?? new CookieJar();
  const log = opts.log ?? (() => {});
  const start = new URL(authorizeUrl);
  const issuerOrigin = start.origin;
  const redirectUri = start.searchParams.get('redirect_uri');
  const trail = [];

  const leaves = (loc) => {
    const u = new URL(loc);
    if (u.origin !== issuerOrigin) return true;
    if (redirectUri) {
      const r = new URL(redirectUri);
      if (u.origin === r.origin && u.pathname === r.pathname) return true;
    }
    return false;
  };

  let url = start.toString();
  let init = { method: 'GET' };
  let sawLogin = false;
  let sawConsent = false;
  for (let step = 0; step < 12; step++) {
    const headers = new Headers(init.headers || {});
    const cookie = jar.header(url);
    if (cookie) headers.set('cookie', cookie);
    headers.set('accept', 'text/html,application/xhtml+xml');
    headers.set('user-agent', 'mcpd-e2e-consent/1 (like a browser)');
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    jar.store(url, res);
    trail.push(`${init.method} ${url} -> ${res.status}`);
    log(`${init.method} ${url} -> ${res.status}`);
    if (isRedirect(res.status)) {
      await res.arrayBuffer().catch(() => {});
      const loc = res.headers.get('location');
      if (!loc) throw new Error(`redirect ${res.status} without Location from ${url}`);
      const abs = new URL(loc, url).toString();
      if (leaves(abs)) {
        return { location: abs, status: res.status, sawLogin, sawConsent, trail };
      }
      url = abs;
      init = { method: 'GET' };
      continue;
    }
    const text = await res.text();
    if (res.status !== 200) {
      const err = new Error(`unexpected ${res.status} at ${url}: ${text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300)}`);
      err.status = res.status;
      err.trail = trail;
      throw err;
    }
    const forms = parseForms(text).filter((f) => f.method === 'post');
    const login = forms.find((f) => f.inputs.some((i) => i.name === 'password'));
    const consent = forms.find((f) => f.buttons.some((b) => b.name === 'action' && (b.value === 'allow' || b.value === 'deny')));
    let form;
    const body = new URLSearchParams();
    if (login) {
      if (sawLogin && opts.failOnRelogin !== false) {
        const msg = text.match(/role="alert"[^>]*>([^<]*)/);
        throw new Error(`login form shown again (wrong password?)${msg ? ': ' + unescapeHTML(msg[1]) : ''}`);
      }
      sawLogin = true;
      form = login;
      for (const i of login.inputs) {
        if (!i.name) continue;
        if (i.name === 'username') body.set('username', username);
        else if (i.name === 'password') body.set('password', password);
        else if ((i.type || 'text') === 'hidden') body.append(i.name, i.value ?? '');
      }
    } else if (consent) {
      sawConsent = true;
      form = consent;
      for (const i of consent.inputs) {
        if (!i.name) continue;
        const type = (i.type || 'text').toLowerCase();
        if (type === 'hidden') body.append(i.name, i.value ?? '');
        else if (type === 'checkbox') {
          if (i.name === 'remember') {
            if (opts.remember) body.append(i.name, i.value || 'on');
          } else if (i.name === 'scope' && opts.scopes) {
            if (opts.scopes.includes(i.value)) body.append(i.name, i.value);
          } else if ('checked' in i) body.append(i.name, i.value || 'on');
        }
      }
      body.set('action', decision);
    } else {
      throw new Error(`page at ${url} has neither a login nor a consent form: ${text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300)}`);
    }
    const target = new URL(form.action || url, url).toString();
    init = {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: issuerOrigin,
        referer: url,
      },
      body: body.toString(),
    };
    url = target;
  }
  throw new Error(`too many steps driving consent: ${trail.join(' | ')}`);
}

// Command-line entry point (also used as a BROWSER for mcp-remote).
if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const follow = args.includes('--follow');
  const deny = args.includes('--deny');
  const remember = args.includes('--remember');
  const url = args.filter((a) => !a.startsWith('--')).pop();
  if (!url) {
    console.error('usage: consent.mjs [--follow] [--deny] [--remember] AUTHORIZE_URL');
    process.exit(2);
  }
  try {
    const r = await driveConsent(url, { decision: deny ? 'deny' : 'allow', remember, log: (l) => console.error(`consent: ${l}`) });
    console.log(r.location);
    if (follow) {
      const res = await fetch(r.location, { redirect: 'manual' });
      console.error(`consent: GET ${r.location} -> ${res.status}`);
      await res.arrayBuffer().catch(() => {});
    }
  } catch (e) {
    console.error(`consent: ${e.message}`);
    process.exit(1);
  }
}
