/* What the list pages share: paging controls, the name filter, rate cells, the page itself. */
'use strict';

/* A list's paging, sorting and filter, kept while the tab lives so that coming back to a list
 * shows the same page. */
function listState() {
  return { page: 1, page_size: 50, name: '', use_regex: false, sort: 'name', sort_reverse: false };
}

/* The vhost names for a form's select; [] when the user may not list them. */
async function vhostNames() {
  try {
    return (await api.get('/vhosts')).map(function (v) { return v.name; });
  } catch (e) {
    return [];
  }
}

/* A vhost select for an add form, filled in once the names arrive. */
function vhostSelect(form) {
  const select = form.querySelector('select[name=vhost]');
  vhostNames().then(function (names) {
    if (names.length) select.replaceChildren.apply(select, names.map(function (n) { return dom.el('option', { value: n }, n); }));
  });
}

/* Paging controls for a paged API reply: page numbers and the page size. */
function pager(reply, state, onchange) {
  function go(page) {
    return function () { onchange({ page: page }); };
  }
  const prev = dom.el('button', { type: 'button', disabled: reply.page <= 1, onclick: go(reply.page - 1) },
    '\u2039 Prev');
  const next = dom.el('button', {
    type: 'button', disabled: reply.page >= reply.page_count, onclick: go(reply.page + 1),
  }, 'Next \u203a');
  const size = dom.el('select', {
    'aria-label': 'page size',
    onchange: function (ev) { onchange({ page: 1, page_size: Number(ev.target.value) }); },
  }, [20, 50, 100, 500].map(function (n) {
    return dom.el('option', { value: n, selected: n === state.page_size }, String(n));
  }));
  return dom.el('div', { class: 'pager' }, prev,
    dom.el('span', { class: 'page-info' }, 'Page ' + reply.page + ' of ' + Math.max(reply.page_count, 1) +
      ' (' + dom.fmtNum(reply.filtered_count) + ' of ' + dom.fmtNum(reply.total_count) + ' items)'),
    next, dom.el('label', null, 'Page size ', size));
}

/* The filter box over a list: name (a substring, or a regular expression when ticked). */
function filterBox(state, onchange) {
  const input = dom.el('input', { type: 'search', name: 'filter', placeholder: 'Filter by name', value: state.name });
  const regex = dom.el('input', { type: 'checkbox', name: 'regex', checked: state.use_regex });
  return dom.el('form', {
    class: 'filter',
    onsubmit: function (ev) {
      ev.preventDefault();
      onchange({ page: 1, name: input.value, use_regex: regex.checked });
    },
  }, input, dom.el('label', null, regex, ' Regex'), dom.el('button', { type: 'submit' }, 'Filter'));
}

/* A sortable column of message_stats.<field>_details.rate, as "12/s". */
function rateColumn(label, field) {
  const key = 'message_stats.' + field + '_details.rate';
  return { label: label, key: key, cls: 'num', value: function (o) { return dom.fmtRate(dom.pick(o, key)); } };
}

/* An object's flags as words: features({durable: 'durable', ...}, q) -> "durable, exclusive". */
function features(names, o) {
  return Object.keys(names).filter(function (k) { return o[k]; }).map(function (k) { return names[k]; })
    .join(', ') || 'none';
}

/* A list page of path (paged, sorted and filtered by the API as RabbitMQ's UI asks it):
 * columns are the table's (see dom.table), extra (a node: an add form) goes under it. */
function listPage(title, path, state, columns, empty, extra) {
  const list = dom.el('div');
  function change(delta) {
    Object.assign(state, delta);
    refreshPage();
  }
  const element = dom.el('section', null, dom.el('h2', null, title), filterBox(state, change), list, extra);

  function fetchPage() {
    return api.get(path + api.query({
      page: state.page, page_size: state.page_size, name: state.name,
      use_regex: state.use_regex ? 'true' : '', sort: state.sort,
      sort_reverse: state.sort_reverse ? 'true' : '',
    }));
  }

  async function refresh() {
    let reply;
    try {
      reply = await fetchPage();
    } catch (e) {
      /* The list shrank under the page shown (400 page_out_of_range): back to the first. */
      if (e.status !== 400 || state.page === 1) throw e;
      state.page = 1;
      reply = await fetchPage();
    }
    const sort = {
      key: state.sort, reverse: state.sort_reverse,
      onchange: function (key, reverse) { change({ page: 1, sort: key, sort_reverse: reverse }); },
    };
    /* A route the API does not page answers the whole list (and ignores the filter). */
    const paged = !Array.isArray(reply);
    list.replaceChildren(dom.table(columns, paged ? reply.items : reply, sort, empty),
      paged ? pager(reply, state, change) : null);
  }

  return { element: element, refresh: refresh };
}

