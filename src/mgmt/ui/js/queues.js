/* Queues: the list (paged, sorted and filtered by the API, as RabbitMQ's UI asks it) and a
 * queue's page (charts, consumers, bindings, get, publish, purge, delete). */
'use strict';

const queueListState = listState();

pages.queues = function () {
  const addForm = dom.form('Add a queue', [
    { name: 'vhost', label: 'Virtual host', type: 'select', options: ['/'], value: '/' },
    { name: 'name', label: 'Name', required: true },
    { name: 'durable', label: 'Durable', type: 'checkbox', value: true },
  ], 'Add queue', async function (v) {
    const ok = await dom.run(function () {
      return api.put(api.path('queues', v.vhost, v.name), { durable: v.durable, auto_delete: false });
    }, 'Queue ' + v.name + ' added.');
    if (ok) refreshPage();
    return ok;
  });
  vhostSelect(addForm);
  const page = listPage('Queues', '/queues', queueListState, [
    { label: 'Virtual host', key: 'vhost', value: function (q) { return q.vhost; } },
    { label: 'Name', key: 'name', value: function (q) { return dom.link(q.name, 'queues', q.vhost, q.name); } },
    { label: 'Type', key: 'type', value: function (q) { return q.type; } },
    { label: 'Ready', key: 'messages_ready', cls: 'num', value: function (q) { return dom.fmtNum(q.messages_ready); } },
    { label: 'Unacked', key: 'messages_unacknowledged', cls: 'num', value: function (q) { return dom.fmtNum(q.messages_unacknowledged); } },
    { label: 'Total', key: 'messages', cls: 'num messages', value: function (q) { return dom.fmtNum(q.messages); } },
    { label: 'Consumers', key: 'consumers', cls: 'num', value: function (q) { return dom.fmtNum(q.consumers); } },
    rateColumn('Incoming', 'publish'),
    rateColumn('Deliver / get', 'deliver_get'),
    rateColumn('Ack', 'ack'),
  ], 'No queues.', addForm);
  return page;
};

/* A received message as RabbitMQ's /get gives it. */
function messageView(m, i) {
  return dom.el('div', { class: 'panel message' },
    dom.el('h4', null, 'Message ' + (i + 1)),
    dom.el('dl', null,
      dom.el('dt', null, 'Exchange'), dom.el('dd', null, exchangeTitle(m.exchange)),
      dom.el('dt', null, 'Routing key'), dom.el('dd', null, m.routing_key),
      dom.el('dt', null, 'Redelivered'), dom.el('dd', null, String(m.redelivered)),
      dom.el('dt', null, 'Properties'), dom.el('dd', null, dom.el('code', null, JSON.stringify(m.properties))),
      dom.el('dt', null, 'Payload (' + m.payload_bytes + ' bytes, ' + m.payload_encoding + ')'),
      dom.el('dd', null, dom.el('pre', { class: 'payload' }, m.payload))));
}

/* The publish form of an exchange's or queue's page. exchange: the name in the path
 * ("amq.default" for the default exchange); routingKey: the form's preset. */
function publishForm(vhost, exchange, routingKey) {
  return dom.form('Publish a message', [
    { name: 'routing_key', label: 'Routing key', value: routingKey },
    {
      name: 'delivery_mode', label: 'Delivery mode', type: 'select',
      options: ['1 - non-persistent', '2 - persistent'], value: '2 - persistent',
    },
    { name: 'headers', label: 'Headers (JSON object)', value: '{}' },
    { name: 'payload', label: 'Payload', type: 'textarea' },
  ], 'Publish message', function (v) {
    return dom.run(async function () {
      let headers;
      try {
        headers = JSON.parse(v.headers || '{}');
      } catch (e) {
        throw new Error('Headers: not a JSON object');
      }
      const reply = await api.post(api.path('exchanges', vhost, exchange, 'publish'), {
        properties: { delivery_mode: Number(v.delivery_mode[0]), headers: headers },
        routing_key: v.routing_key, payload: v.payload, payload_encoding: 'string',
      });
      if (!reply.routed) throw new Error('Message published, but not routed to any queue.');
    }, 'Message published.');
  });
}

pages.queue = function (vhost, name) {
  const qpath = api.path('queues', vhost, name);
  const info = dom.el('div');
  const consumers = dom.el('div');
  const bindings = dom.el('div');
  const got = dom.el('div', { id: 'got-messages' });
  const queued = new RateChart(RateChart.QUEUED, dom.fmtNum);
  const rates = new RateChart(RateChart.MESSAGE_RATES);
  const getForm = dom.form('Get messages', [
    {
      name: 'ackmode', label: 'Ack mode', type: 'select', value: 'ack_requeue_true',
      options: ['ack_requeue_true', 'ack_requeue_false', 'reject_requeue_true', 'reject_requeue_false'],
    },
    { name: 'encoding', label: 'Encoding', type: 'select', options: ['auto', 'base64'], value: 'auto' },
    { name: 'count', label: 'Messages', type: 'number', value: '1', required: true },
  ], 'Get messages', function (v) {
    return dom.run(async function () {
      const msgs = await api.post(qpath + '/get', { count: Number(v.count), ackmode: v.ackmode, encoding: v.encoding, truncate: 50000 });
      got.replaceChildren.apply(got, msgs.length ? msgs.map(messageView) : [dom.el('p', null, 'Queue is empty.')]);
      refreshPage();
    });
  });
  const actions = dom.el('div', { class: 'panel actions' }, dom.el('h3', null, 'Purge or delete'),
    dom.dangerButton('Purge messages', 'Purge every ready message of queue ' + name + '?', async function () {
      if (await dom.run(function () { return api.del(qpath + '/contents'); }, 'Queue ' + name + ' purged.')) refreshPage();
    }),
    ' ',
    dom.dangerButton('Delete queue', 'Delete queue ' + name + '?', async function () {
      if (await dom.run(function () { return api.del(qpath); }, 'Queue ' + name + ' deleted.')) location.hash = '#/queues';
    }));
  const element = dom.el('section', null,
    dom.el('h2', null, 'Queue ', dom.el('span', { class: 'name' }, name), dom.el('small', null, ' in ' + vhost)),
    info, dom.el('h3', null, 'Queued messages'), queued.element,
    dom.el('h3', null, 'Message rates'), rates.element,
    dom.el('h3', null, 'Consumers'), consumers, dom.el('h3', null, 'Bindings'), bindings,
    dom.el('div', { class: 'forms' }, getForm, publishForm(vhost, 'amq.default', name), actions), got);

  async function refresh() {
    const q = await api.get(qpath);
    info.replaceChildren(dom.el('dl', { class: 'facts' },
      dom.el('dt', null, 'Type'), dom.el('dd', null, q.type),
      dom.el('dt', null, 'Features'),
      dom.el('dd', null, features({ durable: 'durable', auto_delete: 'auto-delete', exclusive: 'exclusive' }, q)),
      dom.el('dt', null, 'Arguments'), dom.el('dd', null, dom.el('code', null, JSON.stringify(q.arguments || {}))),
      dom.el('dt', null, 'Policy'), dom.el('dd', null, q.policy || ''),
      dom.el('dt', null, 'Messages'), dom.el('dd', { id: 'queue-messages' }, dom.fmtNum(q.messages)),
      dom.el('dt', null, 'Consumers'), dom.el('dd', null, dom.fmtNum(q.consumers))));
    queued.add(q);
    rates.add(q);
    const cs = (await api.get(api.path('consumers', vhost))).filter(function (c) { return c.queue.name === name; });
    consumers.replaceChildren(dom.table([
      { label: 'Channel', value: function (c) { return c.channel_details.name; } },
      { label: 'Consumer tag', value: function (c) { return c.consumer_tag; } },
      { label: 'Ack required', value: function (c) { return c.ack_required ? 'yes' : 'no'; } },
      { label: 'Exclusive', value: function (c) { return c.exclusive ? 'yes' : 'no'; } },
      { label: 'Prefetch', cls: 'num', value: function (c) { return dom.fmtNum(c.prefetch_count); } },
    ], cs, null, 'No consumers.'));
    const bs = await api.get(qpath + '/bindings');
    bindings.replaceChildren(bindingTable(bs, 'source'));
  }

  return { element: element, refresh: refresh };
};

/* Bindings as a table; end: which side to show ('source' for a queue's, 'destination' for an
 * exchange's), with an unbind button when deleteFn is given (the default exchange's bindings
 * cannot be deleted). */
function bindingTable(bs, end, deleteFn) {
  const cols = [
    { label: end === 'source' ? 'From' : 'To', value: function (b) { return exchangeTitle(b[end]); } },
    { label: 'Routing key', value: function (b) { return b.routing_key; } },
    { label: 'Arguments', value: function (b) { return dom.el('code', null, JSON.stringify(b.arguments || {})); } },
  ];
  if (deleteFn) {
    cols.push({
      label: '',
      value: function (b) { return dom.dangerButton('Unbind', 'Delete this binding?', function () { deleteFn(b); }); },
    });
  }
  return dom.table(cols, bs, null, 'No bindings.');
}
