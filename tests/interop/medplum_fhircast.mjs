// Drive a FHIRcast hub with Medplum's published client (MedplumClient of @medplum/core).
//
//   node medplum_fhircast.mjs <hub.url> <topic>
//
// Prints one JSON line per step on stdout: {"step": ..., "ok": true|false, ...}.
// Exits 0 when every step passed, 1 when one failed, 3 on the overall timeout.
// tests/test_interop_medplum.py runs it and checks each step.

import { MedplumClient } from '@medplum/core';
import { WebSocket } from 'ws';

// Node 20 has no global WebSocket, and Medplum's FhircastConnection calls `new WebSocket(url)`.
globalThis.WebSocket ??= WebSocket;

const [hubArgument, topic] = process.argv.slice(2);
if (!hubArgument || !topic) {
  console.error('usage: node medplum_fhircast.mjs <hub.url> <topic>');
  process.exit(2);
}
// Medplum reads the current context at `${hub.url}/${topic}`.
const hubUrl = hubArgument.replace(/\/+$/, '');
const STEP_MS = 5000;

let step = 'start';
const emit = (name, ok, detail = {}) => console.log(JSON.stringify({ step: name, ok, ...detail }));
const fail = (error) => {
  emit(step, false, { error: error instanceof Error ? error.message : String(error) });
  process.exit(1);
};
// A frame Medplum cannot handle surfaces as an exception inside its websocket listener.
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
setTimeout(() => {
  emit(step, false, { error: 'overall timeout' });
  process.exit(3);
}, 30000).unref();

function within(description, promise, ms = STEP_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${description} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Event ids Medplum generates for what it publishes, seen on the way out.
const publishedIds = [];
async function observingFetch(url, init) {
  if (init?.method === 'POST' && typeof init.body === 'string' && init.body.startsWith('{')) {
    publishedIds.push(JSON.parse(init.body).id);
  }
  return fetch(url, init);
}

const medplum = new MedplumClient({
  baseUrl: new URL(hubUrl).origin + '/',
  fhircastHubUrl: hubUrl,
  fetch: observingFetch,
});

const patientId = `medplum-${Date.now()}`;
const patient = { resourceType: 'Patient', id: patientId, name: [{ family: 'Interop', given: ['Medplum'] }] };

step = 'subscribe';
const subscription = await medplum.fhircastSubscribe(topic, ['Patient-open', 'Patient-close']);
emit(step, true, { endpoint: subscription.endpoint, events: subscription.events });

step = 'connect';
const connection = medplum.fhircastConnect(subscription);
// `websocket` is private in Medplum's types; the script only watches it.
const socket = connection.websocket;
const frames = [];
const acks = [];
const confirmation = new Promise((resolve) => {
  socket.addEventListener('message', (message) => {
    const frame = JSON.parse(String(message.data));
    frames.push(frame);
    if (frame['hub.topic'] && !frame.event) resolve(frame);
  });
});
const send = socket.send.bind(socket);
socket.send = (data) => {
  acks.push(JSON.parse(data));
  return send(data);
};
const events = [];
const waiting = [];
connection.addEventListener('message', ({ payload }) => {
  events.push(payload);
  for (const waiter of waiting.splice(0)) waiter();
});
function nextEvent(name) {
  const found = () => events.find((event) => event.event?.['hub.event'] === name);
  return within(
    `${name} over the websocket`,
    new Promise((resolve) => {
      const check = () => (found() ? resolve(found()) : waiting.push(check));
      check();
    })
  );
}
const disconnected = new Promise((resolve) => connection.addEventListener('disconnect', resolve));
await within('websocket open', new Promise((resolve) => connection.addEventListener('connect', resolve)));
emit(step, true, { url: socket.url });

step = 'confirmation';
emit(step, true, { frame: await within('confirmation frame', confirmation) });

step = 'publish-open';
await medplum.fhircastPublish(topic, 'Patient-open', [{ key: 'patient', resource: patient }]);
emit(step, true, { id: publishedIds.at(-1) });

step = 'receive-open';
const opened = await nextEvent('Patient-open');
// Medplum acknowledges inside its own listener; give the frame time to leave.
await new Promise((resolve) => setTimeout(resolve, 100));
emit(step, true, {
  id: opened.id,
  patient: opened.event.context.find((item) => item.key === 'patient')?.resource?.id,
  versionId: opened.event['context.versionId'] ?? null,
  ack: acks.find((ack) => ack.id === opened.id) ?? null,
});

step = 'get-context';
const current = await medplum.fhircastGetContext(topic);
emit(step, true, {
  type: current['context.type'],
  versionId: current['context.versionId'] ?? null,
  patient: current.context.find((item) => item.key === 'patient')?.resource?.id ?? null,
});

step = 'publish-close';
await medplum.fhircastPublish(topic, 'Patient-close', [{ key: 'patient', resource: patient }]);
emit(step, true, { id: publishedIds.at(-1) });

step = 'receive-close';
const closed = await nextEvent('Patient-close');
emit(step, true, { id: closed.id, patient: closed.event.context[0]?.resource?.id });

step = 'get-context-after-close';
const after = await medplum.fhircastGetContext(topic);
emit(step, true, { type: after['context.type'], entries: after.context.length });

step = 'unsubscribe';
await medplum.fhircastUnsubscribe(subscription);
connection.disconnect();
await within('websocket close', disconnected);
emit(step, true, {
  frames: frames.length,
  events: events.map((event) => event.event['hub.event']),
  acks: acks.length,
});

emit('done', true);
process.exit(0);
