/* Administration: users, virtual hosts, permissions and policies, each a table with delete
 * buttons and an add form (administrators; policymakers for policies). */
'use strict';

/* One admin section: title, a table of GET path with columns (see dom.table), and the add
 * form makeForm() makes. Returns {element, refresh}. */
function adminSection(title, path, columns, makeForm, id) {
  const list = dom.el('div');
  async function refresh() {
    list.replaceChildren(dom.table(columns, await api.get(path), null, 'None.'));
  }
  const element = dom.el('section', { class: 'admin', id: id }, dom.el('h3', null, title), list, makeForm());
  return { element: element, refresh: refresh };
}

/* A delete button for the object at path, refreshing the page after. */
function deleteButton(path, what) {
  return dom.dangerButton('Delete', 'Delete ' + what + '?', async function () {
    if (await dom.run(function () { return api.del(path); }, what + ' deleted.')) refreshPage();
  });
}

/* An add form's submit: PUT body to path, refresh the page, reset the form. */
function putAndRefresh(path, body, what) {
  return dom.run(function () { return api.put(path, body); }, what + ' saved.').then(function (ok) {
    if (ok) refreshPage();
    return ok;
  });
}

/* Tags are a list in RabbitMQ 3.10's replies, a comma-separated string in older ones. */
function tagText(tags) {
  return Array.isArray(tags) ? tags.join(', ') : tags || '';
}

function usersSection() {
  return adminSection('Users', '/users', [
    { label: 'Name', value: function (u) { return u.name; } },
    { label: 'Tags', value: function (u) { return tagText(u.tags); } },
    { label: '', value: function (u) { return deleteButton(api.path('users', u.name), 'User ' + u.name); } },
  ], function () {
    return dom.form('Add a user', [
      { name: 'name', label: 'Username', required: true },
      { name: 'password', label: 'Password', type: 'password', required: true },
      { name: 'tags', label: 'Tags', type: 'select', options: ['', 'management', 'policymaker', 'monitoring', 'administrator'], value: '' },
    ], 'Add user', function (v) {
      return putAndRefresh(api.path('users', v.name), { password: v.password, tags: v.tags }, 'User ' + v.name);
    });
  }, 'users');
}

function vhostsSection() {
  return adminSection('Virtual hosts', '/vhosts', [
    { label: 'Name', value: function (v) { return v.name; } },
    { label: 'Description', value: function (v) { return v.description || ''; } },
    { label: '', value: function (v) { return deleteButton(api.path('vhosts', v.name), 'Virtual host ' + v.name); } },
  ], function () {
    return dom.form('Add a virtual host', [
      { name: 'name', label: 'Name', required: true },
      { name: 'description', label: 'Description' },
    ], 'Add virtual host', function (v) {
      return putAndRefresh(api.path('vhosts', v.name), { description: v.description }, 'Virtual host ' + v.name);
    });
  }, 'vhosts');
}

function permissionsSection() {
  return adminSection('Permissions', '/permissions', [
    { label: 'User', value: function (p) { return p.user; } },
    { label: 'Virtual host', value: function (p) { return p.vhost; } },
    { label: 'Configure', value: function (p) { return dom.el('code', null, p.configure); } },
    { label: 'Write', value: function (p) { return dom.el('code', null, p.write); } },
    { label: 'Read', value: function (p) { return dom.el('code', null, p.read); } },
    {
      label: '',
      value: function (p) {
        return deleteButton(api.path('permissions', p.vhost, p.user), 'Permissions of ' + p.user + ' in ' + p.vhost);
      },
    },
  ], function () {
    const f = dom.form('Set permissions', [
      { name: 'user', label: 'User', required: true },
      { name: 'vhost', label: 'Virtual host', type: 'select', options: ['/'], value: '/' },
      { name: 'configure', label: 'Configure regexp', value: '.*' },
      { name: 'write', label: 'Write regexp', value: '.*' },
      { name: 'read', label: 'Read regexp', value: '.*' },
    ], 'Set permissions', function (v) {
      return putAndRefresh(api.path('permissions', v.vhost, v.user), { configure: v.configure, write: v.write, read: v.read },
        'Permissions of ' + v.user);
    });
    vhostSelect(f);
    return f;
  }, 'permissions');
}

function policiesSection() {
  return adminSection('Policies', '/policies', [
    { label: 'Virtual host', value: function (p) { return p.vhost; } },
    { label: 'Name', value: function (p) { return p.name; } },
    { label: 'Pattern', value: function (p) { return dom.el('code', null, p.pattern); } },
    { label: 'Apply to', value: function (p) { return p['apply-to']; } },
    { label: 'Definition', value: function (p) { return dom.el('code', null, JSON.stringify(p.definition)); } },
    { label: 'Priority', cls: 'num', value: function (p) { return String(p.priority); } },
    { label: '', value: function (p) { return deleteButton(api.path('policies', p.vhost, p.name), 'Policy ' + p.name); } },
  ], function () {
    const f = dom.form('Add a policy', [
      { name: 'vhost', label: 'Virtual host', type: 'select', options: ['/'], value: '/' },
      { name: 'name', label: 'Name', required: true },
      { name: 'pattern', label: 'Pattern (regexp)', value: '.*', required: true },
      { name: 'apply_to', label: 'Apply to', type: 'select', options: ['all', 'queues', 'exchanges'], value: 'all' },
      { name: 'priority', label: 'Priority', type: 'number', value: '0' },
      { name: 'definition', label: 'Definition (JSON object)', type: 'textarea', value: '{"max-length": 1000}', required: true },
    ], 'Add policy', function (v) {
      let definition;
      try {
        definition = JSON.parse(v.definition);
      } catch (e) {
        dom.notify('Definition: not a JSON object', true);
        return Promise.resolve(false);
      }
      return putAndRefresh(api.path('policies', v.vhost, v.name),
        { pattern: v.pattern, 'apply-to': v.apply_to, priority: Number(v.priority), definition: definition },
        'Policy ' + v.name);
    });
    vhostSelect(f);
    return f;
  }, 'policies');
}

pages.admin = function () {
  const sections = [usersSection(), vhostsSection(), permissionsSection(), policiesSection()];
  const element = dom.el('section', null, dom.el('h2', null, 'Admin'),
    dom.el('p', { class: 'jump' }, sections.map(function (s) {
      /* Buttons, not #links: the hash is the route. */
      return dom.el('button', { type: 'button', class: 'link', onclick: function () { s.element.scrollIntoView(); } },
        s.element.querySelector('h3').textContent);
    })),
    sections.map(function (s) { return s.element; }));
  return {
    element: element,
    refresh: function () {
      return Promise.all(sections.map(function (s) { return s.refresh(); }));
    },
  };
};
