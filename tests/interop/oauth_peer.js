// oauth2-mock-server (axa-group) as an independent authorization server for the interop test
// of "Connect Gmail" (tests/api/interop.rs).
// Usage: node oauth_peer.js DIR
// Env: PEER_CLIENT_ID, PEER_CLIENT_SECRET   the one client it accepts (client_secret_basic or
//                                           client_secret_post, as RFC 6749 §2.3.1 describes)
//      PEER_EMAIL                           the mailbox userinfo names
//      PEER_EXPIRES_IN                      expires_in of access tokens, seconds (default 3599)
// Prints "READY http://127.0.0.1:<port>" (endpoints: /authorize, /token, /userinfo, /revoke) and
// nothing more on stdout. Appends one JSON line per request it answered to DIR/requests.jsonl.
//
// The mock issues signed JWTs, checks the PKCE verifier when one is sent and redirects from
// /authorize at once (no login page); it keeps no other state. Its documented hooks add what a
// Google-like server does and the test needs: codes that work once, for the redirect URI they
// were issued for, and only with a verifier when the request carried a challenge; the client's
// credentials; the granted scope in token responses (the mock answers the token request's
// `scope`, or "dummy"); refresh tokens that belong to a grant, are rotated on use (the mock
// mints a new one every time; the one presented stops working) and end with the grant;
// userinfo for live access tokens only; a fixed `sub` and `expires_in`.
//
// Revoking: creating DIR/revoke revokes every grant issued so far, as a user removing the app
// at Google does; their refresh tokens then get `invalid_grant`, their access tokens a 401 at
// userinfo. The file is consumed (deleted) by the next request, so grants made afterwards
// work. POST /revoke with a token this server issued revokes that token's grant.
const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');

const [dir] = process.argv.slice(2);
const clientId = process.env.PEER_CLIENT_ID;
const clientSecret = process.env.PEER_CLIENT_SECRET;
const email = process.env.PEER_EMAIL;
const expiresIn = Number(process.env.PEER_EXPIRES_IN || '3599');
const sub = '104207553201882346112';
const log = path.join(dir, 'requests.jsonl');
const revokeFlag = path.join(dir, 'revoke');

// Google's texts for the errors the test provokes.
const REVOKED = 'Token has been expired or revoked.';

const codes = new Map(); // code -> { redirectUri, scope, challenge, used }
const grants = []; // { scope, revoked }
const refreshTokens = new Map(); // refresh token -> { grant, rotated }
const accessTokens = new Map(); // access token -> { grant, expiresAt (ms) }

function record(entry) {
  fs.appendFileSync(log, JSON.stringify({ at: Date.now(), ...entry }) + '\n');
}

function applyRevocationFlag() {
  if (fs.existsSync(revokeFlag)) {
    for (const grant of grants) grant.revoked = true;
    fs.rmSync(revokeFlag, { force: true });
    record({ endpoint: 'control', revoked_grants: grants.length });
  }
}

// client_secret_basic: Basic base64(urlencode(id) ":" urlencode(secret)), or client_secret_post.
function clientOf(req) {
  const header = req.headers.authorization || '';
  const match = /^basic\s+(.+)$/i.exec(header);
  if (match) {
    const decoded = Buffer.from(match[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const unform = (s) => decodeURIComponent(s.replace(/\+/g, ' '));
    try {
      return {
        method: 'basic',
        id: unform(decoded.slice(0, colon)),
        secret: unform(decoded.slice(colon + 1)),
      };
    } catch {
      return { method: 'basic', id: null, secret: null };
    }
  }
  const body = req.body || {};
  if (body.client_secret !== undefined) {
    return { method: 'post', id: body.client_id, secret: body.client_secret };
  }
  return { method: 'none', id: body.client_id, secret: null };
}

function fail(response, status, error, description) {
  response.statusCode = status;
  response.body = { error, error_description: description };
}

async function main() {
  const { OAuth2Server } = await import(pathToFileURL(require.resolve('oauth2-mock-server')).href);
  const server = new OAuth2Server();
  await server.issuer.keys.generate('RS256');
  const service = server.service;

  service.on('beforeAuthorizeRedirect', (redirect, req) => {
    applyRevocationFlag();
    const q = req.query;
    const url = redirect.url;
    const code = url.searchParams.get('code');
    const entry = {
      endpoint: 'authorize',
      client_id: q.client_id,
      response_type: q.response_type,
      scope: q.scope,
      code_challenge_method: q.code_challenge_method,
      has_code_challenge: Boolean(q.code_challenge),
      access_type: q.access_type,
      prompt: q.prompt,
      login_hint: q.login_hint,
      has_state: Boolean(q.state),
    };
    // The mock redirects whatever the client: refuse others the way a real server would.
    if (q.client_id !== clientId) {
      url.searchParams.delete('code');
      url.searchParams.set('error', 'unauthorized_client');
      record({ ...entry, error: 'unauthorized_client' });
      return;
    }
    if (code) {
      codes.set(code, {
        redirectUri: q.redirect_uri,
        scope: q.scope || '',
        challenge: Boolean(q.code_challenge),
        used: false,
      });
      // Google adds the granted scope (and more) to the redirect.
      url.searchParams.set('scope', q.scope || '');
      url.searchParams.set('authuser', '0');
    }
    record(entry);
  });

  // Both tokens of a response (access token and ID token) expire when the response says, and
  // name our user rather than the mock's "johndoe"; the access token carries the granted scope.
  service.on('beforeTokenSigning', (token, req) => {
    token.payload.exp = token.payload.iat + expiresIn;
    token.payload.sub = sub;
    const body = req.body || {};
    const granted = codes.get(body.code)?.scope ?? refreshTokens.get(body.refresh_token)?.grant.scope;
    if (token.payload.scope !== undefined && granted !== undefined) token.payload.scope = granted;
  });

  service.on('beforeResponse', (response, req) => {
    applyRevocationFlag();
    const body = req.body || {};
    const client = clientOf(req);
    const entry = {
      endpoint: 'token',
      grant_type: body.grant_type,
      client_auth: client.method,
      client_id: client.id,
      has_code_verifier: body.code_verifier !== undefined,
      redirect_uri: body.redirect_uri,
    };
    const done = () => {
      const ok = response.statusCode === 200;
      record({
        ...entry,
        status: response.statusCode,
        error: ok ? undefined : response.body.error,
        access_token: ok ? response.body.access_token : undefined,
        refresh_token_issued: ok && Boolean(response.body.refresh_token),
      });
    };
    if (response.statusCode !== 200) return done();
    if (client.id !== clientId || client.secret !== clientSecret) {
      fail(response, 401, 'invalid_client', 'The OAuth client was not found.');
      return done();
    }
    let grant;
    if (body.grant_type === 'authorization_code') {
      const code = codes.get(body.code);
      if (code === undefined || code.used) {
        fail(response, 400, 'invalid_grant', 'Malformed auth code.');
        return done();
      }
      code.used = true;
      if (code.redirectUri !== body.redirect_uri) {
        fail(response, 400, 'redirect_uri_mismatch', 'Bad Request');
        return done();
      }
      // The mock checks the verifier only when one is sent.
      if (code.challenge && body.code_verifier === undefined) {
        fail(response, 400, 'invalid_grant', 'Missing code verifier.');
        return done();
      }
      grant = { scope: code.scope, revoked: false };
      grants.push(grant);
    } else if (body.grant_type === 'refresh_token') {
      const presented = refreshTokens.get(body.refresh_token);
      if (presented === undefined || presented.rotated || presented.grant.revoked) {
        fail(response, 400, 'invalid_grant', REVOKED);
        return done();
      }
      presented.rotated = true;
      grant = presented.grant;
    } else {
      fail(response, 400, 'unsupported_grant_type', `Invalid grant_type: ${body.grant_type}`);
      return done();
    }
    response.body.scope = grant.scope;
    response.body.expires_in = expiresIn;
    refreshTokens.set(response.body.refresh_token, { grant, rotated: false });
    accessTokens.set(response.body.access_token, {
      grant,
      expiresAt: Date.now() + expiresIn * 1000,
    });
    done();
  });

  service.on('beforeUserinfo', (response, req) => {
    applyRevocationFlag();
    const match = /^bearer\s+(.+)$/i.exec(req.headers.authorization || '');
    const token = match && accessTokens.get(match[1]);
    if (!token || token.grant.revoked || Date.now() >= token.expiresAt) {
      response.statusCode = 401;
      response.body = {
        error: 'invalid_token',
        error_description: 'Invalid Credentials',
      };
    } else {
      response.body = { sub, email, email_verified: true };
    }
    record({ endpoint: 'userinfo', status: response.statusCode });
  });

  // The mock parses no form body on /revoke and answers at once (200, as RFC 7009 allows for
  // any token): read the body here and revoke the grant when it has arrived.
  service.on('beforeRevoke', (_response, req) => {
    applyRevocationFlag();
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const token = form.get('token');
      const issued = refreshTokens.get(token) || accessTokens.get(token);
      if (issued) issued.grant.revoked = true;
      record({
        endpoint: 'revoke',
        content_type: req.headers['content-type'],
        known_token: Boolean(issued),
        kind: refreshTokens.has(token) ? 'refresh' : accessTokens.has(token) ? 'access' : null,
      });
    });
  });

  await server.start(0, '127.0.0.1');
  const base = `http://127.0.0.1:${server.address().port}`;
  server.issuer.url = base;
  console.log(`READY ${base}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
