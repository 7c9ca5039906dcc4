#!/usr/bin/env node
// amqplib (Node) renewing its credentials with connection.update-secret against a broker at
// HOST:PORT: the current password is accepted (update-secret-ok, the connection goes on: a
// channel opens after it), then a wrong one closes the connection with 530 NOT_ALLOWED. Prints
// one line per step and OK; exits 1 on any failure (or after 20 s).
//
//   node interop/amqplib/update-secret.js 127.0.0.1:5672

'use strict';

const assert = require('node:assert/strict');
const amqp = require('amqplib');

const url = `amqp://guest:guest@${process.argv[2]}`;

const timer = setTimeout(() => {
  console.log('FAILED: no result within 20 s');
  process.exit(1);
}, 20000);

async function main() {
  const conn = await amqp.connect(url);
  await conn.updateSecret(Buffer.from('guest'), 'rotation');
  console.log('update-secret with the password: ok');
  await conn.createChannel();
  console.log('channel opened after it');
  const closed = new Promise((resolve) => conn.on('error', resolve));
  // amqplib leaves the update's promise pending when the connection closes under it: the
  // answer is the connection's error.
  conn.updateSecret(Buffer.from('not-the-password'), 'rotation').catch(() => {});
  const err = await closed;
  console.log(`update-secret with a wrong secret: ${err.message}`);
  assert.match(err.message, /530 \(NOT-ALLOWED\).*New secret was refused by one of the backends/);
}

main().then(() => {
  clearTimeout(timer);
  console.log('OK');
}, (e) => {
  console.log(`FAILED: ${e.stack || e}`);
  process.exit(1);
});
