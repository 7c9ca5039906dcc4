/* Connections (with close) and channels, both paged by the API. */
'use strict';

const connectionListState = listState();
const channelListState = listState();

/* Closes connection name; the X-Reason header is not settable from here, so the client sees
 * RabbitMQ's default text ("Closed via management plugin"). */
async function closeConnection(name) {
  if (await dom.run(function () { return api.del(api.path('connections', name)); }, 'Connection closed.')) refreshPage();
}

pages.connections = function () {
  return listPage('Connections', '/connections', connectionListState, [
    { label: 'Name', key: 'name', value: function (c) { return c.name; } },
    { label: 'User', key: 'user', value: function (c) { return c.user; } },
    { label: 'Virtual host', key: 'vhost', value: function (c) { return c.vhost; } },
    { label: 'State', key: 'state', value: function (c) { return c.state; } },
    { label: 'Protocol', key: 'protocol', value: function (c) { return c.protocol; } },
    { label: 'Channels', key: 'channels', cls: 'num', value: function (c) { return dom.fmtNum(c.channels); } },
    { label: 'Client', value: function (c) { return dom.pick(c, 'client_properties.product') || ''; } },
    {
      label: '', value: function (c) {
        return dom.dangerButton('Close', 'Close connection ' + c.name + '?', function () { closeConnection(c.name); });
      },
    },
  ], 'No connections.');
};

pages.channels = function () {
  return listPage('Channels', '/channels', channelListState, [
    { label: 'Channel', key: 'name', value: function (c) { return c.name; } },
    { label: 'User', key: 'user', value: function (c) { return c.user; } },
    { label: 'Virtual host', key: 'vhost', value: function (c) { return c.vhost; } },
    { label: 'Mode', value: function (c) { return [c.confirm && 'confirm', c.transactional && 'tx'].filter(Boolean).join(' '); } },
    { label: 'Consumers', key: 'consumer_count', cls: 'num', value: function (c) { return dom.fmtNum(c.consumer_count); } },
    { label: 'Prefetch', key: 'prefetch_count', cls: 'num', value: function (c) { return dom.fmtNum(c.prefetch_count); } },
    { label: 'Unacked', key: 'messages_unacknowledged', cls: 'num', value: function (c) { return dom.fmtNum(c.messages_unacknowledged); } },
    rateColumn('Publish', 'publish'),
    rateColumn('Deliver / get', 'deliver_get'),
  ], 'No channels.');
};
