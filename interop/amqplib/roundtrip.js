#!/usr/bin/env node
// amqplib (Node, the promise API) against a broker at HOST:PORT (default 127.0.0.1:5672):
// a work queue (assertQueue, sendToQueue, consume, ack), publisher confirms
// (createConfirmChannel, per-message callbacks, waitForConfirms) and topic pub/sub (two
// exclusive server-named queues). Prints one line per step; the output is the same for
// RabbitMQ 3.10 and Warren. Exits 0 when every step behaved, 1 otherwise (also after 20 s).
//
//   (cd interop/amqplib && npm ci) && node interop/amqplib/roundtrip.js 127.0.0.1:5682

'use strict';

const assert = require('node:assert/strict');
const amqp = require('amqplib');

const addr = process.argv[2] || '127.0.0.1:5672';
const i = addr.lastIndexOf(':');
const url = `amqp://guest:guest@${addr.slice(0, i) || '127.0.0.1'}:${addr.slice(i + 1)}`;

const QUEUE = 'interop-amqplib-work';
const TOPIC = 'interop-amqplib-topic';

const timer = setTimeout(() => {
  console.log('FAILED: no result within 20 s');
  process.exit(1);
}, 20000);

// Resolves with the first n messages consumed from queue on ch (acking each if ack).
function take(ch, queue, n, ack) {
  return new Promise((resolve, reject) => {
    const got = [];
    ch.consume(queue, (msg) => {
      if (msg === null) {
        reject(new Error(`consumer of ${queue} cancelled by the server`));
        return;
      }
      if (ack) ch.ack(msg);
      got.push(msg);
      if (got.length === n) resolve(got);
    }, { noAck: !ack }).catch(reject);
  });
}

async function workQueue(conn) {
  const ch = await conn.createChannel();
  await ch.deleteQueue(QUEUE);
  const q = await ch.assertQueue(QUEUE, { durable: false });
  assert.equal(q.queue, QUEUE);
  assert.equal(q.messageCount, 0);
  console.log(`assertQueue ${QUEUE}: messageCount 0, consumerCount ${q.consumerCount}`);
  for (let n = 0; n < 10; n++) {
    ch.sendToQueue(QUEUE, Buffer.from(`task ${n}`), {
      persistent: true, correlationId: `c${n}`, headers: { n },
    });
  }
  console.log('sendToQueue: 10 messages');
  await ch.prefetch(3);
  const got = await take(ch, QUEUE, 10, true);
  assert.deepEqual(got.map((m) => m.content.toString()),
    Array.from({ length: 10 }, (_, n) => `task ${n}`));
  got.forEach((m, n) => {
    assert.equal(m.properties.correlationId, `c${n}`);
    assert.equal(m.properties.deliveryMode, 2);
    assert.equal(m.properties.headers.n, n);
    assert.equal(m.fields.redelivered, false);
  });
  console.log('consume with prefetch 3 and ack: 10 messages in order, properties intact');
  const check = await ch.checkQueue(QUEUE);
  assert.equal(check.messageCount, 0);
  await ch.deleteQueue(QUEUE);
  await ch.close();
  console.log('queue empty and deleted');
}

async function confirms(conn) {
  const ch = await conn.createConfirmChannel();
  const q = await ch.assertQueue('', { exclusive: true });
  assert.match(q.queue, /^amq\.gen-/);
  const acked = await Promise.all(Array.from({ length: 20 }, (_, n) => new Promise(
    (resolve, reject) => ch.sendToQueue(q.queue, Buffer.from(`confirm ${n}`), {},
      (err) => (err ? reject(err) : resolve(n))))));
  assert.equal(acked.length, 20);
  console.log('confirm channel: 20 sendToQueue callbacks acked');
  ch.publish('', 'interop-amqplib-nowhere', Buffer.from('unroutable'));
  ch.publish('amq.direct', 'interop-amqplib-nowhere', Buffer.from('unroutable'));
  await ch.waitForConfirms();
  console.log('waitForConfirms: unroutable messages acked too');
  const check = await ch.checkQueue(q.queue);
  assert.equal(check.messageCount, 20);
  await ch.close();
  console.log('server-named queue holds the 20');
}

async function topic(conn) {
  const ch = await conn.createChannel();
  await ch.deleteExchange(TOPIC);
  await ch.assertExchange(TOPIC, 'topic', { durable: false });
  const a = (await ch.assertQueue('', { exclusive: true })).queue;
  const b = (await ch.assertQueue('', { exclusive: true })).queue;
  await ch.bindQueue(a, TOPIC, 'kern.*');
  await ch.bindQueue(b, TOPIC, '*.critical');
  await ch.bindQueue(b, TOPIC, 'audit.#');
  for (const key of ['kern.info', 'kern.critical', 'app.critical', 'app.info',
    'audit.x.y', 'audit']) {
    ch.publish(TOPIC, key, Buffer.from(key));
  }
  const [gotA, gotB] = await Promise.all([take(ch, a, 2, false), take(ch, b, 4, false)]);
  assert.deepEqual(gotA.map((m) => m.fields.routingKey), ['kern.info', 'kern.critical']);
  assert.deepEqual(gotB.map((m) => m.fields.routingKey),
    ['kern.critical', 'app.critical', 'audit.x.y', 'audit']);
  console.log('topic: kern.* got kern.info kern.critical; *.critical + audit.# got '
    + 'kern.critical app.critical audit.x.y audit');
  // Nothing else arrives.
  const extra = [];
  await ch.consume(a, (m) => extra.push(m), { noAck: true });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(extra.length, 0);
  await ch.deleteExchange(TOPIC);
  await ch.close();
}

async function main() {
  const conn = await amqp.connect(url);
  console.log('connected');
  await workQueue(conn);
  await confirms(conn);
  await topic(conn);
  await conn.close();
  console.log('closed');
  console.log('OK');
}

main().then(() => {
  clearTimeout(timer);
  process.exit(0);
}, (err) => {
  console.log(`FAILED: ${err.stack || err}`);
  process.exit(1);
});
