#!/usr/bin/env node
// amqplib (Node) over TLS against a broker's amqps listener at HOST:PORT, presenting a client
// certificate: connect with amqps:// (the server certificate checked against CA_FILE and the
// host name), declare a queue, publish 3 messages with confirms (the last of 256 KiB), consume
// and ack them, close. Prints one line per step and OK; exits 1 on any failure (or after 20 s).
//
//   node interop/amqplib/tls.js localhost:5671 ca.pem client.pem client.key

'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const amqp = require('amqplib');

const [addr, caFile, certFile, keyFile] = process.argv.slice(2);
const i = addr.lastIndexOf(':');
const host = addr.slice(0, i);
const url = `amqps://guest:guest@${host}:${addr.slice(i + 1)}`;
const QUEUE = 'interop-amqplib-tls';

const timer = setTimeout(() => {
  console.log('FAILED: no result within 20 s');
  process.exit(1);
}, 20000);

async function main() {
  const conn = await amqp.connect(url, {
    ca: [fs.readFileSync(caFile)],
    cert: fs.readFileSync(certFile),
    key: fs.readFileSync(keyFile),
    servername: host,
  });
  console.log('connected over TLS');
  const ch = await conn.createConfirmChannel();
  await ch.deleteQueue(QUEUE);
  await ch.assertQueue(QUEUE, { durable: false });
  const bodies = [Buffer.from('one'), Buffer.from('two'), Buffer.alloc(256 * 1024, 7)];
  for (const b of bodies) ch.sendToQueue(QUEUE, b);
  await ch.waitForConfirms();
  console.log('published 3 messages, confirmed');
  const got = await new Promise((resolve, reject) => {
    const seen = [];
    ch.consume(QUEUE, (m) => {
      if (m === null) return; // cancelled by the server (the queue deleted at the end)
      ch.ack(m);
      seen.push(m.content);
      if (seen.length === bodies.length) resolve(seen);
    }).catch(reject);
  });
  got.forEach((b, n) => assert.ok(b.equals(bodies[n])));
  console.log('consumed and acked 3 messages, bodies intact');
  await ch.deleteQueue(QUEUE);
  await conn.close();
  console.log('closed');
  console.log('OK');
}

main().then(() => clearTimeout(timer), (err) => {
  console.log(`FAILED: ${err.stack || err}`);
  process.exit(1);
});
