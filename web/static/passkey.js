// The WebAuthn calls of mcpd's login and account pages: the only script
// the pages run, loaded from this origin (the CSP allows nothing inline).
//
// A form marked data-passkey="login" or "register" is not posted as it
// stands. On submit the script asks the server (data-begin) for the
// ceremony's options, lets the browser's authenticator create or use a
// passkey, puts the ceremony id and the authenticator's answer (JSON) into
// the form's hidden fields, and then posts the form: the server checks
// it, and answers as for any form (a redirect, or the page with a message).
'use strict';

(() => {
  const b64url = {
    decode(s) {
      const b64 = s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '=');
      const bin = atob(b64);
      const out = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return out.buffer;
    },
    encode(buf) {
      let bin = '';
      for (const b of new Uint8Array(buf)) bin += String.fromCharCode(b);
      return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    },
  };

  const descriptors = (list) => (list || []).map((d) => ({ ...d, id: b64url.decode(d.id) }));

  function creationOptions(o) {
    return {
      ...o,
      challenge: b64url.decode(o.challenge),
      user: { ...o.user, id: b64url.decode(o.user.id) },
      excludeCredentials: descriptors(o.excludeCredentials),
    };
  }

  function requestOptions(o) {
    return { ...o, challenge: b64url.decode(o.challenge), allowCredentials: descriptors(o.allowCredentials) };
  }

  function credentialJSON(cred) {
    const r = cred.response;
    const response = { clientDataJSON: b64url.encode(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = b64url.encode(r.attestationObject);
      if (typeof r.getTransports === 'function') response.transports = r.getTransports();
    } else {
      response.authenticatorData = b64url.encode(r.authenticatorData);
      response.signature = b64url.encode(r.signature);
      if (r.userHandle) response.userHandle = b64url.encode(r.userHandle);
    }
    return JSON.stringify({
      id: cred.id,
      rawId: b64url.encode(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults(),
      response,
    });
  }

  function explain(err) {
    switch (err && err.name) {
      case 'NotAllowedError':
        return 'No passkey was used: it was cancelled or timed out, or this device has no passkey for this site.';
      case 'InvalidStateError':
        return 'This authenticator already holds a passkey of your account.';
      case 'SecurityError':
        return 'The browser refused passkeys for this address.';
      default:
        return (err && err.message) || 'Something went wrong. Try again.';
    }
  }

  for (const form of document.querySelectorAll('form[data-passkey]')) {
    const status = document.getElementById(form.dataset.status);
    const button = form.querySelector('button[type=submit]');
    const say = (text) => { if (status) status.textContent = text; };
    if (!window.PublicKeyCredential || !navigator.credentials) {
      button.disabled = true;
      say('This browser cannot use passkeys.');
      continue;
    }
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      button.disabled = true;
      say('Waiting for your passkey…');
      try {
        const body = new URLSearchParams();
        body.set('csrf_token', form.elements.csrf_token.value);
        if (form.elements.request_id) body.set('request_id', form.elements.request_id.value);
        const res = await fetch(form.dataset.begin, {
          method: 'POST', body, credentials: 'same-origin', headers: { Accept: 'application/json' },
        });
        const begin = await res.json().catch(() => ({}));
        if (!res.ok) throw new Error(begin.error || 'The server could not start: ' + res.status + '.');
        const cred = form.dataset.passkey === 'register'
          ? await navigator.credentials.create({ publicKey: creationOptions(begin.publicKey) })
          : await navigator.credentials.get({ publicKey: requestOptions(begin.publicKey) });
        form.elements.ceremony.value = begin.ceremony;
        form.elements.credential.value = credentialJSON(cred);
        say('Checking…');
        form.submit();
      } catch (err) {
        button.disabled = false;
        say(explain(err));
      }
    });
  }
})();
