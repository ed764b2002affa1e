// Verify a Switchboard webhook: Node 20, built-in modules only (no packages).
//
// Every webhook carries a header
//
//   Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=<...>]
//
// where the HMAC key is your whole webhook secret ("whsec_...", prefix included) and the
// signed message is the timestamp, a ".", then the raw request body. Accept the request
// when any v1= entry matches: today there is one, but a header may carry more.
//
// Verify the *raw* body bytes, before any JSON parsing: re-serialised JSON differs.
//
//   // Express
//   import { verify } from './verify_webhook.mjs';
//   app.post('/switchboard', express.raw({ type: 'application/json' }), (req, res) => {
//     try {
//       verify(process.env.SWITCHBOARD_WEBHOOK_SECRET,
//              req.get('Switchboard-Signature') ?? '',
//              req.body);                       // a Buffer, thanks to express.raw
//     } catch (e) {
//       return res.status(400).send(e.message);
//     }
//     const event = JSON.parse(req.body);
//     ...
//     res.sendStatus(204);
//   });
//
// Command line (exit 0 and "valid", or exit 1 and the reason):
//
//   SWITCHBOARD_WEBHOOK_SECRET=whsec_... node verify_webhook.mjs "$HEADER" < body.json

import { createHmac, timingSafeEqual } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Older or future timestamps are refused, so a captured request cannot be replayed later.
export const TOLERANCE_SECONDS = 300;

// Returns true if `header` signs `body` (a Buffer or string) with `secret`; throws otherwise.
export function verify(secret, header, body, tolerance = TOLERANCE_SECONDS, now = undefined) {
  let timestamp;
  const candidates = [];
  for (const item of header.split(',').map((s) => s.trim())) {
    const eq = item.indexOf('=');
    if (eq < 0) throw new Error('malformed header: expected key=value pairs');
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    if (key === 't') {
      if (timestamp !== undefined || !/^[0-9]+$/.test(value)) {
        throw new Error('malformed header: bad t=');
      }
      timestamp = value;
    } else if (key === 'v1') {
      // Buffer.from(_, 'hex') silently stops at a bad digit, so check the form first.
      if (!/^[0-9a-fA-F]{64}$/.test(value)) {
        throw new Error('malformed header: v1= is not 64 hex digits');
      }
      candidates.push(Buffer.from(value, 'hex'));
    }
    // Other keys (a future v2=) are ignored.
  }
  if (timestamp === undefined || candidates.length === 0) {
    throw new Error('malformed header: needs t= and v1=');
  }

  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
  // timingSafeEqual takes the same time wherever the bytes differ (both are 32 bytes);
  // check every entry.
  let matched = false;
  for (const candidate of candidates) {
    matched = timingSafeEqual(expected, candidate) || matched;
  }
  if (!matched) throw new Error('signature mismatch (wrong secret, or the body was altered)');

  // Checked after the signature, so "too old" only ever describes a genuine request.
  now ??= Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > tolerance) {
    throw new Error(`timestamp ${timestamp} is more than ${tolerance} s from now (${now})`);
  }
  return true;
}

async function main() {
  const secret = process.env.SWITCHBOARD_WEBHOOK_SECRET;
  if (!secret || process.argv.length !== 3) {
    console.error('usage: SWITCHBOARD_WEBHOOK_SECRET=whsec_... node verify_webhook.mjs HEADER < BODY');
    return 2;
  }
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  try {
    verify(secret, process.argv[2], Buffer.concat(chunks));
  } catch (e) {
    console.log(e.message);
    return 1;
  }
  console.log('valid');
  return 0;
}

// Run as a script (not imported)? Node reports the module's real path, so resolve symlinks.
if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  process.exitCode = await main();
}
