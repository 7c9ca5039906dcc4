/* The dashboard's shell: login, hash routing, and the 5 s refresh (RabbitMQ's default).
 * A route's page (pages.* from the other files) is built once when the route is entered,
 * {element, refresh}; the timer then calls refresh(), which redraws the page's live parts only,
 * so that forms being filled in are left alone. */
'use strict';

const REFRESH_MS = 5000;
let current = null; /* the page shown: {element, refresh, busy, again} */

/* Route table: first segment of the hash -> page by the number of further segments. */
function pageFor(segs) {
  const routes = {
    '': { 0: pages.overview },
    connections: { 0: pages.connections },
    channels: { 0: pages.channels },
    exchanges: { 0: pages.exchanges, 2: pages.exchange },
    queues: { 0: pages.queues, 2: pages.queue },
    admin: { 0: pages.admin },
  };
  const byCount = segs && routes[segs[0]];
  return byCount && byCount[segs.length - 1];
}

/* "#/queues/%2F/q1" -> ["queues", "/", "q1"]; null for a malformed escape. */
function routeSegments() {
  const hash = location.hash.replace(/^#\/?/, '');
  try {
    return hash === '' ? [''] : hash.split('/').map(decodeURIComponent);
  } catch (e) {
    return null;
  }
}

/* Redraws the page shown: on the timer, on entering it, and after a change made from it. A
 * call while the page's last refresh still waits for the broker runs once more after it (so
 * that a change shows at once); a page just entered is never held up by the previous one. */
async function refreshPage() {
  const page = current;
  if (page === null) return;
  if (page.busy) {
    page.again = true;
    return;
  }
  page.busy = true;
  try {
    do {
      page.again = false;
      await page.refresh();
      /* Drawn from the broker's data at least once (the CSS and the browser test use it). */
      page.element.classList.add('loaded');
    } while (page.again && page === current);
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 401) showLogin('Your login is no longer accepted.');
    else if (page === current) dom.notify(e.message, true);
  } finally {
    page.busy = false;
  }
}

function route() {
  if (!api.loggedIn()) return showLogin();
  const segs = routeSegments();
  const make = pageFor(segs);
  const view = document.getElementById('view');
  document.querySelectorAll('#nav a').forEach(function (a) {
    a.classList.toggle('active', segs !== null && a.getAttribute('href') === '#/' + segs[0]);
  });
  setNav(false);
  if (!make) {
    current = null;
    view.replaceChildren(dom.el('h2', null, 'Not found'), dom.el('p', null, 'No such page: ' + location.hash));
    return;
  }
  current = make.apply(null, segs.slice(1));
  view.replaceChildren(current.element);
  refreshPage();
}

/* The header's state: logged in (nav, user, logout) or not. */
function setChrome(user) {
  document.getElementById('who').textContent = user ? user : '';
  document.getElementById('logout').hidden = !user;
  document.getElementById('nav-toggle').hidden = !user;
  document.getElementById('nav').classList.toggle('off', !user);
}

/* On a narrow screen the nav is a menu behind a button; on a wide one CSS always shows it. */
function setNav(open) {
  document.getElementById('nav').hidden = !open;
  document.getElementById('nav-toggle').setAttribute('aria-expanded', String(open));
}

function showLogin(message) {
  api.logout();
  current = null;
  setChrome(null);
  const error = dom.el('p', { class: 'error', id: 'login-error', hidden: !message }, message || '');
  const form = dom.form('Log in', [
    { name: 'username', label: 'Username', required: true },
    { name: 'password', label: 'Password', type: 'password', required: true },
  ], 'Log in', async function (v) {
    api.login(v.username, v.password);
    try {
      const me = await api.get('/whoami');
      sessionStorage.setItem('warren.user', me.name);
      setChrome(me.name);
      route();
      return true;
    } catch (e) {
      api.logout();
      /* 401's reason: "Login failed" (wrong password, unknown user) or "Not management user". */
      error.textContent = e.status === 401 && e.message !== 'Login failed' ? 'Login failed: ' + e.message : e.message;
      error.hidden = false;
      return false;
    }
  });
  form.id = 'login';
  form.querySelector('input[name=password]').setAttribute('autocomplete', 'current-password');
  document.getElementById('view').replaceChildren(dom.el('div', { class: 'login' }, form, error));
}

document.getElementById('logout').addEventListener('click', function () {
  sessionStorage.removeItem('warren.user');
  showLogin();
});
document.getElementById('nav-toggle').addEventListener('click', function () {
  setNav(document.getElementById('nav').hidden);
});
window.addEventListener('hashchange', route);
/* A hidden tab asks nothing of the broker. */
setInterval(function () { if (!document.hidden) refreshPage(); }, REFRESH_MS);
if (api.loggedIn()) setChrome(sessionStorage.getItem('warren.user'));
route();
