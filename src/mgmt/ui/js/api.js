/* The management HTTP API from the browser. The credentials are kept in sessionStorage, as
 * RabbitMQ's UI keeps them: they last as long as the tab and are sent as basic auth by our
 * code only (never a cookie, so another site cannot make the browser use them). */
'use strict';

const api = (function () {
  const KEY = 'warren.credentials';

  /* An API reply other than 2xx: status, and RabbitMQ's "reason" when the body has one. */
  class ApiError extends Error {
    constructor(status, reason) {
      super(reason || 'HTTP ' + status);
      this.status = status;
    }
  }

  /* base64 of "user:password" in UTF-8 (btoa alone takes Latin-1 only). */
  function basic(user, password) {
    const bytes = new TextEncoder().encode(user + ':' + password);
    let bin = '';
    bytes.forEach(function (b) { bin += String.fromCharCode(b); });
    return btoa(bin);
  }

  function loggedIn() {
    return sessionStorage.getItem(KEY) !== null;
  }

  function login(user, password) {
    sessionStorage.setItem(KEY, basic(user, password));
  }

  function logout() {
    sessionStorage.removeItem(KEY);
  }

  /* One request: body (an object) sent as JSON; resolves to the decoded reply (null when
   * empty), rejects with an ApiError. credentials 'omit': our Authorization header is sent,
   * but a 401 never makes the browser pop up its own login dialog. */
  async function request(method, path, body) {
    const headers = { Accept: 'application/json' };
    const auth = sessionStorage.getItem(KEY);
    if (auth !== null) headers.Authorization = 'Basic ' + auth;
    const init = { method: method, headers: headers, credentials: 'omit', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const resp = await fetch('api' + path, init);
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (!resp.ok) throw new ApiError(resp.status, data && (data.reason || data.error));
    return data;
  }

  /* "/queues/%2F/q1" from ("queues", "/", "q1"): every segment escaped. */
  function path() {
    return '/' + Array.prototype.map.call(arguments, encodeURIComponent).join('/');
  }

  /* A query string from an object, skipping empty values. */
  function query(params) {
    const parts = [];
    Object.keys(params).forEach(function (k) {
      const v = params[k];
      if (v !== undefined && v !== null && v !== '')
        parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(v));
    });
    return parts.length ? '?' + parts.join('&') : '';
  }

  return {
    ApiError: ApiError, loggedIn: loggedIn, login: login, logout: logout, path: path,
    query: query,
    get: function (p) { return request('GET', p); },
    put: function (p, body) { return request('PUT', p, body === undefined ? {} : body); },
    post: function (p, body) { return request('POST', p, body === undefined ? {} : body); },
    del: function (p) { return request('DELETE', p); },
  };
})();
