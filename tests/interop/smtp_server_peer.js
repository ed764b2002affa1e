// A nodemailer smtp-server for the interop tests (tests/api/interop.rs and interop_faults.rs).
// Usage: node smtp_server_peer.js DIR MODE   (MODE: starttls | tls)
// Reads DIR/cert.pem and DIR/key.pem, accepts AUTH PLAIN/LOGIN for $PEER_USER/$PEER_PASSWORD,
// appends each message to DIR/messages.jsonl and prints "READY <port>". It also appends every
// RCPT with the code of its reply to DIR/rcpts.jsonl, and to DIR/sessions.jsonl
// {"event": "auth"} for each login (one per session) and {"event": "idle_close"} when it
// closes an idle session. Faults, from the environment (none by default):
//   PEER_REFUSE=a@x,b@y  RCPT TO those -> 550 5.1.1 <addr>: User unknown
//   PEER_DEFER=a@x,b@y   RCPT TO those -> 451 4.2.1 Mailbox busy, try again later, for as long
//                        as DIR/defer-off does not exist
//   PEER_SIZE=n          announce SIZE n in EHLO and refuse larger messages (552)
//   PEER_SMTPUTF8=1|0    offer SMTPUTF8 or not (smtp-server's default: offered)
//   PEER_IDLE_MS=n       close a session idle for n ms (smtp-server's socketTimeout: it says
//                        "421 Timeout - closing connection" first)
//   PEER_XOAUTH2_CHECK=url  accept AUTH XOAUTH2 too, as Exchange Online does: the token is
//                        checked by POSTing user and token to url (204 = valid); a refused
//                        token gets "535 5.7.3 Authentication unsuccessful"
//   PEER_AUTH_REPLY="535 5.7.139 ..."  answer every login with this reply (a tenant with SMTP
//                        AUTH switched off)
const fs = require('fs');
const path = require('path');
const { SMTPServer } = require('smtp-server');
const { SMTPConnection } = require('smtp-server/lib/smtp-connection.js');

const [dir, mode] = process.argv.slice(2);
const user = process.env.PEER_USER;
const password = process.env.PEER_PASSWORD;
const addresses = (name) =>
  new Set(
    (process.env[name] || '')
      .split(',')
      .map((a) => a.trim().toLowerCase())
      .filter(Boolean),
  );
const refuse = addresses('PEER_REFUSE');
const defer = addresses('PEER_DEFER');
const append = (name, record) =>
  fs.appendFileSync(path.join(dir, name), JSON.stringify(record) + '\n');
const refusal = (code, message) => {
  const error = new Error(message);
  error.responseCode = code;
  return error;
};

const options = {
  secure: mode === 'tls',
  key: fs.readFileSync(path.join(dir, 'key.pem')),
  cert: fs.readFileSync(path.join(dir, 'cert.pem')),
  authMethods: process.env.PEER_XOAUTH2_CHECK ? ['PLAIN', 'LOGIN', 'XOAUTH2'] : ['PLAIN', 'LOGIN'],
  logger: false,
  onAuth(auth, session, callback) {
    const forced = process.env.PEER_AUTH_REPLY;
    if (forced) {
      append('sessions.jsonl', { event: 'auth', ok: false, method: auth.method });
      const [code, ...text] = forced.split(' ');
      callback(refusal(Number(code), text.join(' ')));
      return;
    }
    if (auth.method === 'XOAUTH2') {
      const body = new URLSearchParams({ user: auth.username, token: auth.accessToken });
      fetch(process.env.PEER_XOAUTH2_CHECK, { method: 'POST', body })
        .then((res) => {
          const ok = res.status === 204;
          append('sessions.jsonl', { event: 'auth', ok, method: 'XOAUTH2', user: auth.username });
          if (ok) {
            callback(null, { user: auth.username });
          } else {
            callback(refusal(535, '5.7.3 Authentication unsuccessful'));
          }
        })
        .catch((e) => callback(refusal(454, `4.7.0 Temporary authentication failure: ${e}`)));
      return;
    }
    const ok = auth.username === user && auth.password === password;
    append('sessions.jsonl', { event: 'auth', ok });
    if (ok) {
      callback(null, { user: auth.username });
    } else {
      callback(refusal(535, '5.7.8 Invalid username or password'));
    }
  },
  onRcptTo(rcpt, session, callback) {
    const address = rcpt.address;
    const key = address.toLowerCase();
    let error = null;
    if (refuse.has(key)) {
      error = refusal(550, `5.1.1 <${address}>: User unknown`);
    } else if (defer.has(key) && !fs.existsSync(path.join(dir, 'defer-off'))) {
      error = refusal(451, '4.2.1 Mailbox busy, try again later');
    }
    const code = error ? error.responseCode : 250;
    const reply = error ? `${code} ${error.message}` : '250 Accepted';
    append('rcpts.jsonl', { address, code, reply });
    callback(error);
  },
  onData(stream, session, callback) {
    const chunks = [];
    stream.on('data', (chunk) => chunks.push(chunk));
    stream.on('end', () => {
      if (stream.sizeExceeded) {
        // smtp-server answers 552 itself; the message is not kept.
        callback(refusal(552, `5.3.4 Message exceeds the fixed maximum message size ${options.size}`));
        return;
      }
      append('messages.jsonl', {
        mail_from: session.envelope.mailFrom.address,
        rcpt_tos: session.envelope.rcptTo.map((r) => r.address),
        data: Buffer.concat(chunks).toString('utf8'),
      });
      callback(null, 'Message queued');
    });
  },
};
if (process.env.PEER_SMTPUTF8) {
  options.hideSMTPUTF8 = process.env.PEER_SMTPUTF8 !== '1';
}
if (process.env.PEER_SIZE) {
  options.size = Number(process.env.PEER_SIZE);
}
if (process.env.PEER_IDLE_MS) {
  options.socketTimeout = Number(process.env.PEER_IDLE_MS);
}

// The idle timer's handler: it answers 421 and closes unless the client is waiting for us.
const onTimeout = SMTPConnection.prototype._onTimeout;
SMTPConnection.prototype._onTimeout = function () {
  const closing = this._closing;
  onTimeout.call(this);
  if (!closing && this._closing) {
    append('sessions.jsonl', { event: 'idle_close' });
  }
};

const server = new SMTPServer(options);
server.listen(0, '127.0.0.1', () => {
  console.log(`READY ${server.server.address().port}`);
});
