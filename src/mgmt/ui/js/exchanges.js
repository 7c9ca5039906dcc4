/* Exchanges: the list (paged by the API) and an exchange's page (rates, bindings with add and
 * remove, publish, delete). */
'use strict';

const exchangeListState = listState();

/* The default exchange is "" in the API but "amq.default" in paths, as in RabbitMQ. */
function exchangePathName(name) {
  return name === '' ? 'amq.default' : name;
}

/* An exchange's name as shown: the default one's as RabbitMQ's UI shows it. */
function exchangeTitle(name) {
  return name === '' ? '(AMQP default)' : name;
}

pages.exchanges = function () {
  const addForm = dom.form('Add an exchange', [
    { name: 'vhost', label: 'Virtual host', type: 'select', options: ['/'], value: '/' },
    { name: 'name', label: 'Name', required: true },
    { name: 'type', label: 'Type', type: 'select', options: ['direct', 'fanout', 'topic', 'headers'], value: 'direct' },
    { name: 'durable', label: 'Durable', type: 'checkbox', value: true },
  ], 'Add exchange', async function (v) {
    const ok = await dom.run(function () {
      return api.put(api.path('exchanges', v.vhost, v.name),
        { type: v.type, durable: v.durable, auto_delete: false, internal: false, arguments: {} });
    }, 'Exchange ' + v.name + ' added.');
    if (ok) refreshPage();
    return ok;
  });
  vhostSelect(addForm);
  const page = listPage('Exchanges', '/exchanges', exchangeListState, [
    { label: 'Virtual host', key: 'vhost', value: function (x) { return x.vhost; } },
    {
      label: 'Name', key: 'name',
      value: function (x) { return dom.link(exchangeTitle(x.name), 'exchanges', x.vhost, exchangePathName(x.name)); },
    },
    { label: 'Type', key: 'type', value: function (x) { return x.type; } },
    { label: 'Features', value: function (x) { return features({ durable: 'D', auto_delete: 'AD', internal: 'I' }, x); } },
    rateColumn('Rate in', 'publish_in'),
    rateColumn('Rate out', 'publish_out'),
  ], 'No exchanges.', addForm);
  return page;
};

pages.exchange = function (vhost, name) {
  const xpath = api.path('exchanges', vhost, name);
  const info = dom.el('div');
  const bindings = dom.el('div');
  const rates = new RateChart([
    { key: 'message_stats.publish_in_details.rate', label: 'Publish (in)', color: '#edc240' },
    { key: 'message_stats.publish_out_details.rate', label: 'Publish (out)', color: '#afd8f8' },
  ]);
  const isDefault = name === 'amq.default';
  async function unbind(b) {
    const p = api.path('bindings', vhost, 'e', b.source, b.destination_type === 'queue' ? 'q' : 'e', b.destination, b.properties_key);
    if (await dom.run(function () { return api.del(p); }, 'Binding deleted.')) refreshPage();
  }
  const bindForm = dom.form('Add a binding from this exchange', [
    { name: 'type', label: 'To', type: 'select', options: ['queue', 'exchange'], value: 'queue' },
    { name: 'destination', label: 'Name', required: true },
    { name: 'routing_key', label: 'Routing key' },
  ], 'Bind', async function (v) {
    const p = api.path('bindings', vhost, 'e', name, v.type === 'queue' ? 'q' : 'e', v.destination);
    const ok = await dom.run(function () { return api.post(p, { routing_key: v.routing_key, arguments: {} }); }, 'Binding added.');
    if (ok) refreshPage();
    return ok;
  });
  const actions = dom.el('div', { class: 'panel actions' }, dom.el('h3', null, 'Delete'),
    dom.dangerButton('Delete exchange', 'Delete exchange ' + name + '?', async function () {
      if (await dom.run(function () { return api.del(xpath); }, 'Exchange ' + name + ' deleted.')) location.hash = '#/exchanges';
    }));
  const element = dom.el('section', null,
    dom.el('h2', null, 'Exchange ', dom.el('span', { class: 'name' }, exchangeTitle(isDefault ? '' : name)),
      dom.el('small', null, ' in ' + vhost)),
    info, dom.el('h3', null, 'Message rates'), rates.element,
    dom.el('h3', null, 'Bindings'), bindings,
    dom.el('div', { class: 'forms' }, isDefault ? null : bindForm, publishForm(vhost, name, ''), isDefault ? null : actions));

  async function refresh() {
    const x = await api.get(xpath);
    info.replaceChildren(dom.el('dl', { class: 'facts' },
      dom.el('dt', null, 'Type'), dom.el('dd', null, x.type),
      dom.el('dt', null, 'Features'),
      dom.el('dd', null, features({ durable: 'durable', auto_delete: 'auto-delete', internal: 'internal' }, x)),
      dom.el('dt', null, 'Arguments'), dom.el('dd', null, dom.el('code', null, JSON.stringify(x.arguments || {})))));
    rates.add(x);
    if (isDefault) {
      bindings.replaceChildren(dom.el('p', null, 'The default exchange is bound to every queue by its name.'));
      return;
    }
    const bs = await api.get(xpath + '/bindings/source');
    bindings.replaceChildren(bindingTable(bs, 'destination', unbind));
  }

  return { element: element, refresh: refresh };
};
