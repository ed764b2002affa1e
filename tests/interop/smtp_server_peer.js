// A nodemailer smtp-server for the interop tests.
// Usage: node smtp_server_peer.js DIR MODE   (MODE: starttls | tls)
// Reads DIR/cert.pem and DIR/key.pem, accepts AUTH PLAIN/LOGIN for $PEER_USER/$PEER_PASSWORD,
// appends each message to DIR/messages.jsonl and prints "READY <port>".
const fs = require('fs');
const path = require('path');
const { SMTPServer } = require('smtp-server');

const [dir, mode] = process.argv.slice(2);
const user = process.env.PEER_USER;
const password = process.env.PEER_PASSWORD;

const server = new SMTPServer({
  secure: mode === 'tls',
  key: fs.readFileSync(path.join(dir, 'key.pem')),
  cert: fs.readFileSync(path.join(dir, 'cert.pem')),
  authMethods: ['PLAIN', 'LOGIN'],
  logger: false,
  onAuth(auth, session, callback) {
    if (auth.username === user && auth.password === password) {
      callback(null, { user: auth.username });
    } else {
      const error = new Error('5.7.8 Invalid username or password');
      error.responseCode = 535;
      callback(error);
    }
  },
  onData(stream, session, callback) {
    const chunks = [];
    stream.on('data', (chunk) => chunks.push(chunk));
    stream.on('end', () => {
      const record = {
        mail_from: session.envelope.mailFrom.address,
        rcpt_tos: session.envelope.rcptTo.map((r) => r.address),
        data: Buffer.concat(chunks).toString('utf8'),
      };
      fs.appendFileSync(path.join(dir, 'messages.jsonl'), JSON.stringify(record) + '\n');
      callback(null, 'Message queued');
    });
  },
});

server.listen(0, '127.0.0.1', () => {
  console.log(`READY ${server.server.address().port}`);
});
