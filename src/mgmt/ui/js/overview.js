/* The overview: totals, message rates and queued messages charts, alarms, listeners. */
'use strict';

pages.overview = function () {
  const rates = new RateChart(RateChart.MESSAGE_RATES);
  const queued = new RateChart(RateChart.QUEUED, dom.fmtNum);
  const totals = dom.el('div', { class: 'totals' });
  const alarms = dom.el('div', { id: 'alarms' });
  const listeners = dom.el('div');
  const node = dom.el('p', { class: 'muted' });
  const element = dom.el('section', null,
    dom.el('h2', null, 'Overview'), node, alarms, totals,
    dom.el('h3', null, 'Queued messages'), queued.element,
    dom.el('h3', null, 'Message rates'), rates.element,
    dom.el('h3', null, 'Listeners'), listeners);

  function total(label, value, href) {
    return dom.el('a', { class: 'total', href: href }, dom.el('b', null, dom.fmtNum(value)), label);
  }

  /* RabbitMQ answers 503 with the alarms when any is set. */
  async function drawAlarms() {
    let list = [];
    try {
      await api.get('/health/checks/alarms');
    } catch (e) {
      if (e.status !== 503) throw e;
      list = ['A resource alarm is set: publishers are blocked (' + e.message + ')'];
    }
    alarms.replaceChildren.apply(alarms, list.length
      ? list.map(function (t) { return dom.el('p', { class: 'alarm' }, t); })
      : [dom.el('p', { class: 'ok-line' }, 'No alarms: memory and disk are within their limits.')]);
  }

  async function refresh() {
    const o = await api.get('/overview');
    node.textContent = o.product_name + ' ' + o.product_version + ' on ' + o.node;
    const t = o.object_totals || {};
    totals.replaceChildren(
      total('Connections', t.connections, '#/connections'),
      total('Channels', t.channels, '#/channels'),
      total('Exchanges', t.exchanges, '#/exchanges'),
      total('Queues', t.queues, '#/queues'),
      total('Consumers', t.consumers, '#/queues'),
      total('Messages', (o.queue_totals || {}).messages, '#/queues'));
    queued.add(o.queue_totals || {});
    rates.add(o);
    listeners.replaceChildren(dom.table([
      { label: 'Protocol', value: function (l) { return l.protocol; } },
      { label: 'Bound to', value: function (l) { return l.ip_address; } },
      { label: 'Port', cls: 'num', value: function (l) { return String(l.port); } },
    ], o.listeners || []));
    await drawAlarms();
  }

  return { element: element, refresh: refresh };
};
