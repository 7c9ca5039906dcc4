/* Small DOM helpers shared by the pages. Every text from the broker (queue names, users...)
 * goes in through textContent, never innerHTML: a queue named "<img onerror=...>" stays text. */
'use strict';

const dom = (function () {
  /* el('td', {class: 'num', onclick: fn}, child, 'text', ...): an element; attributes named
   * on* become listeners, null children are skipped. */
  function el(tag, attrs) {
    const e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) return;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : v);
    });
    for (let i = 2; i < arguments.length; i++) append(e, arguments[i]);
    return e;
  }

  function append(parent, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) child.forEach(function (c) { append(parent, c); });
    else parent.appendChild(typeof child === 'object' ? child : document.createTextNode(child));
  }

  function fmtNum(n) {
    return n === undefined || n === null ? '' : Number(n).toLocaleString('en');
  }

  /* A rate in messages per second: one decimal below 10/s, as RabbitMQ shows them. */
  function fmtRate(r) {
    if (r === undefined || r === null) return '';
    return (r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString('en')) + '/s';
  }

  /* The value at a dotted path ("message_stats.publish_details.rate") of obj, or undefined. */
  function pick(obj, dotted) {
    return dotted.split('.').reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }

  /* Shows a message under the header for a few seconds; errors stay until the next one. */
  let noticeTimer = null;
  function notify(text, isError) {
    const n = document.getElementById('notice');
    n.textContent = text;
    n.className = isError ? 'error' : 'ok';
    n.hidden = false;
    clearTimeout(noticeTimer);
    if (!isError) noticeTimer = setTimeout(function () { n.hidden = true; }, 4000);
  }

  /* Runs action (a promise-returning function) and reports how it went; resolves to whether it
   * succeeded, so that a page can refresh after it. */
  async function run(action, doneText) {
    try {
      await action();
      if (doneText) notify(doneText, false);
      return true;
    } catch (e) {
      notify(e.message, true);
      return false;
    }
  }

  /* A table. columns: [{label, key (dotted, for sorting), value: row -> cell content,
   * cls}]; sort: {key, reverse, onchange(key, reverse)} makes the headers sort buttons. Wrapped
   * in a div that scrolls sideways on a narrow screen. */
  function table(columns, rows, sort, empty) {
    const head = el('tr', null, columns.map(function (c) {
      if (!sort || !c.key) return el('th', { class: c.cls }, c.label);
      const active = sort.key === c.key;
      const mark = active ? (sort.reverse ? ' \u25bc' : ' \u25b2') : '';
      return el('th', { class: c.cls, 'aria-sort': active ? (sort.reverse ? 'descending' : 'ascending') : null },
        el('button', {
          type: 'button', class: 'sort', 'data-key': c.key,
          onclick: function () { sort.onchange(c.key, active ? !sort.reverse : false); },
        }, c.label + mark));
    }));
    const body = rows.length
      ? rows.map(function (r) {
        return el('tr', null, columns.map(function (c) { return el('td', { class: c.cls }, c.value(r)); }));
      })
      : el('tr', null, el('td', { colspan: columns.length, class: 'empty' }, empty || 'Nothing here.'));
    return el('div', { class: 'scroll' }, el('table', null, el('thead', null, head), el('tbody', null, body)));
  }

  /* A form of labelled fields. fields: [{name, label, type ('text', 'password', 'select',
   * 'textarea', 'checkbox', 'number'), options, value, required}]; onsubmit gets the values by
   * name and resolves when done (the form is then reset). */
  function form(title, fields, submitLabel, onsubmit) {
    const inputs = {};
    const rows = fields.map(function (f) {
      let input;
      if (f.type === 'select') {
        input = el('select', { name: f.name }, f.options.map(function (o) {
          return el('option', { value: o, selected: o === f.value }, o === '' ? '(none)' : o);
        }));
      } else if (f.type === 'textarea') {
        input = el('textarea', { name: f.name, rows: 4, required: f.required }, f.value || '');
      } else {
        input = el('input', {
          name: f.name, type: f.type || 'text', value: f.value, required: f.required,
          checked: f.type === 'checkbox' && f.value, autocomplete: f.type === 'password' ? 'new-password' : 'off',
        });
      }
      inputs[f.name] = input;
      return el('label', null, el('span', null, f.label), input);
    });
    const submit = el('button', { type: 'submit' }, submitLabel);
    const node = el('form', {
      class: 'panel',
      onsubmit: async function (ev) {
        ev.preventDefault();
        const values = {};
        Object.keys(inputs).forEach(function (k) {
          values[k] = inputs[k].type === 'checkbox' ? inputs[k].checked : inputs[k].value;
        });
        submit.disabled = true;
        try {
          if (await onsubmit(values)) node.reset();
        } finally {
          submit.disabled = false;
        }
      },
    }, el('h3', null, title), rows, submit);
    return node;
  }

  /* A button that asks before doing something that cannot be undone. */
  function dangerButton(label, question, action) {
    return el('button', {
      type: 'button', class: 'danger',
      onclick: function () { if (window.confirm(question)) action(); },
    }, label);
  }

  /* A link to a route: "#/queues/%2F/q1" from ('queues', '/', 'q1'). */
  function link(text) {
    const segs = Array.prototype.slice.call(arguments, 1);
    return el('a', { href: '#/' + segs.map(encodeURIComponent).join('/') }, text);
  }

  return {
    el: el, fmtNum: fmtNum, fmtRate: fmtRate, pick: pick, notify: notify, run: run,
    table: table, form: form, dangerButton: dangerButton, link: link,
  };
})();

/* The pages, filled in by the page files: name -> function (route parameters) ->
 * {element, refresh: async ()}. */
const pages = {};
