// A real OpenID provider for golive's single sign-on tests (tests/it/sso.rs): panva's certified
// oidc-provider on 127.0.0.1, with its development login and consent pages.
//
// Environment: CLIENT_ID, CLIENT_SECRET, REDIRECT_URI (golive's callback), PORT (0 or absent:
// any free port). Once listening it prints one line, `oidc provider ready at <issuer>`.
//
// Accounts (any password): alice (golive-reps), root (golive-admins), vera (golive-viewers, as a
// single string rather than a list), nobody (staff, which golive maps to no role). Each has `preferred_username` and `groups`, in the ID token (profile scope).
//
// Test controls, on the provider's own port, for what a certified provider never does by itself:
//   POST /__test/id-token/<mode>  the token endpoint's next ID tokens are rewritten and signed
//                                 again with the provider's own current key: mode `wrong-audience`
//                                 (aud is another client), `expired` (exp an hour ago) or `as-issued`.
//   POST /__test/rotate-keys      a new signing key (new kid) replaces the old one, in the JWKS too;
//                                 sessions, codes and grants carry over.

import http from 'node:http';
import crypto from 'node:crypto';

import Provider from 'oidc-provider';
import * as jose from 'jose';

const clientId = process.env.CLIENT_ID;
const clientSecret = process.env.CLIENT_SECRET;
const redirectUri = process.env.REDIRECT_URI;
if (!clientId || !clientSecret || !redirectUri) {
  console.error('CLIENT_ID, CLIENT_SECRET and REDIRECT_URI are required');
  process.exit(2);
}

const accounts = {
  alice: { preferred_username: 'alice', groups: ['golive-reps', 'staff'] },
  root: { preferred_username: 'root', groups: ['golive-admins'] },
  vera: { preferred_username: 'vera', groups: 'golive-viewers' },
  nobody: { preferred_username: 'nobody', groups: ['staff'] },
};

async function newSigningKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };
}

// Cookie signing keys stay the same across key rotations, so a browser's provider session does.
const cookieKeys = [crypto.randomBytes(32).toString('hex')];

let idTokenMode = 'as-issued';
let signingKey = await newSigningKey();

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(process.env.PORT || 0), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

function makeProvider(key) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [key] },
    cookies: { keys: cookieKeys },
    claims: { openid: ['sub'], profile: ['preferred_username', 'groups'] },
    // The profile claims go into the ID token, not only to the userinfo endpoint.
    conformIdTokenClaims: false,
    pkce: { methods: ['S256'], required: () => true },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      const account = accounts[id];
      if (!account) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...account }; } };
    },
  });
  // The ID token as a test asks for it, signed again with the provider's own key.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path !== '/token' || idTokenMode === 'as-issued' || !ctx.body || !ctx.body.id_token) return;
    const claims = jose.decodeJwt(ctx.body.id_token);
    const now = Math.floor(Date.now() / 1000);
    if (idTokenMode === 'wrong-audience') {
      claims.aud = 'another-client';
      delete claims.azp;
    } else if (idTokenMode === 'expired') {
      claims.iat = now - 7200;
      claims.exp = now - 3600;
    }
    const privateKey = await jose.importJWK(key, 'RS256');
    ctx.body = {
      ...ctx.body,
      id_token: await new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: key.kid }).sign(privateKey),
    };
  });
  return provider;
}

let provider = makeProvider(signingKey);

server.on('request', async (req, res) => {
  const url = new URL(req.url, issuer);
  if (req.method === 'POST' && url.pathname.startsWith('/__test/id-token/')) {
    const mode = url.pathname.slice('/__test/id-token/'.length);
    if (!['as-issued', 'wrong-audience', 'expired'].includes(mode)) {
      res.writeHead(400).end(`unknown mode ${mode}\n`);
      return;
    }
    idTokenMode = mode;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ mode }));
    return;
  }
  if (req.method === 'POST' && url.pathname === '/__test/rotate-keys') {
    signingKey = await newSigningKey();
    // oidc-provider's memory adapter is shared by every instance of the process, so codes,
    // grants and sessions carry over to the provider with the new key.
    provider = makeProvider(signingKey);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kid: signingKey.kid }));
    return;
  }
  provider.callback()(req, res);
});

console.log(`oidc provider ready at ${issuer}`);
