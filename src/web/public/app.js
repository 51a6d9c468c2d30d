// Herald settings page. No framework: plain modules, no inline script, served by the app itself.
const $ = (sel) => document.querySelector(sel);
const state = { topics: [], me: null, publicKey: null };

async function api(path, options = {}) {
  const res = await fetch(path, {
    credentials: 'same-origin',
    ...options,
    headers: { ...(options.body ? { 'content-type': 'application/json' } : {}), ...(options.headers || {}) },
  });
  if (res.status === 204) return null;
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(body.error || `request failed (${res.status})`);
    err.status = res.status;
    throw err;
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) node.append(c);
  return node;
}

function renderTopics() {
  const follows = (state.me && state.me.topics) || {};
  const groups = new Map();
  for (const t of state.topics) {
    if (!groups.has(t.group)) groups.set(t.group, []);
    groups.get(t.group).push(t);
  }
  const root = $('#topics');
  root.replaceChildren();
  for (const [group, topics] of groups) {
    const fs = el('fieldset', { class: 'group' }, el('legend', { text: group }));
    for (const t of topics) {
      const f = follows[t.id] || { cadence: 'off', channels: ['push'] };
      const cadence = el('select', { id: `cadence-${t.id}`, 'data-topic': t.id, 'aria-label': `${t.name}: how often` });
      for (const [value, label] of [['off', 'Off'], ['instant', 'Instant'], ['daily', 'Daily']]) {
        cadence.append(el('option', { value, selected: f.cadence === value, text: label }));
      }
      const channel = (c, label) =>
        el('label', {}, el('input', { type: 'checkbox', id: `${c}-${t.id}`, 'data-channel': c, checked: f.channels.includes(c) }), label);
      const channels = el('span', { class: 'channels', hidden: f.cadence !== 'instant' }, channel('push', 'Push'), channel('email', 'Email'));
      cadence.addEventListener('change', () => { channels.hidden = cadence.value !== 'instant'; });
      fs.append(
        el('div', { class: 'topic', 'data-topic-row': t.id },
          el('label', { for: `cadence-${t.id}`, text: t.name, class: 'name' }),
          el('span', { class: 'desc', text: t.description }),
          el('span', { class: 'controls' }, cadence, channels)),
      );
    }
    root.append(fs);
  }
}

function collectTopics() {
  const topics = {};
  for (const row of document.querySelectorAll('[data-topic-row]')) {
    const id = row.getAttribute('data-topic-row');
    const cadence = row.querySelector('select').value;
    const channels = [...row.querySelectorAll('input[data-channel]:checked')].map((i) => i.getAttribute('data-channel'));
    topics[id] = { cadence, channels: cadence === 'instant' ? channels : [] };
  }
  return topics;
}

function fillTimeZones(selected) {
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [selected];
  if (!zones.includes(selected)) zones.unshift(selected);
  const select = $('#timezone');
  select.replaceChildren(...zones.map((z) => el('option', { value: z, selected: z === selected, text: z.replace(/_/g, ' ') })));
}

async function save() {
  const email = $('#email').value.trim();
  const body = { email: email || null, timeZone: $('#timezone').value, digestTime: $('#digest-time').value, topics: collectTopics() };
  state.me = state.me ? await api('/api/me', { method: 'PUT', body: JSON.stringify(body) }) : await api('/api/subscribers', { method: 'POST', body: JSON.stringify(body) });
  return state.me;
}

function urlBase64ToUint8Array(b64) {
  const padded = (b64 + '='.repeat((4 - (b64.length % 4)) % 4)).replace(/-/g, '+').replace(/_/g, '/');
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

function pushSupported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

function showPushState() {
  const out = $('#push-state');
  const button = $('#allow-push');
  if (!pushSupported()) {
    out.textContent = 'This browser cannot receive push notifications. Choose email for your alerts.';
    button.disabled = true;
    return;
  }
  const devices = (state.me && state.me.devices) || [];
  if (Notification.permission === 'denied') {
    out.textContent = 'Notifications are blocked for this site. Allow them in the browser’s site settings (the icon left of the address), then reload.';
    button.disabled = true;
  } else if (Notification.permission === 'granted' && devices.length > 0) {
    out.textContent = `Notifications are on (${devices.length} device${devices.length === 1 ? '' : 's'}).`;
    button.textContent = 'Re-register this device';
  } else {
    out.textContent = 'Get instant news alerts in this browser.';
  }
}

async function allowNotifications() {
  const status = $('#save-status');
  try {
    if (!state.me) await save();
    const registration = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    // Asked on this click only: browsers penalise sites that prompt on load.
    const permission = await Notification.requestPermission();
    if (permission !== 'granted') {
      showPushState();
      return;
    }
    await navigator.serviceWorker.ready;
    const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: urlBase64ToUint8Array(state.publicKey) });
    await api('/api/me/push-subscriptions', { method: 'POST', body: JSON.stringify(subscription.toJSON ? subscription.toJSON() : subscription) });
    state.me = await api('/api/me');
    status.textContent = 'Notifications are on for this browser.';
  } catch (err) {
    status.textContent = `Could not turn on notifications: ${err.message}`;
  }
  showPushState();
}

async function renderInbox() {
  const list = $('#inbox');
  if (!state.me) return;
  const { items } = await api('/api/me/inbox');
  if (items.length === 0) {
    list.replaceChildren(el('li', { class: 'empty', text: 'No alerts yet.' }));
    return;
  }
  const topicName = (id) => (state.topics.find((t) => t.id === id) || { name: id }).name;
  list.replaceChildren(...items.map((i) =>
    el('li', {},
      el('a', { href: i.url, text: i.title, rel: 'noopener' }),
      el('div', { class: 'meta', text: `${topicName(i.topicId)} · ${i.channel} · ${new Date(i.at).toLocaleString()} · ${i.why}` }))));
}

// Emails stop after repeated hard bounces: say so next to the address, so the reader can correct it.
function showEmailStatus(status) {
  const old = $('#email-status');
  if (old) old.remove();
  if (!status || !status.disabled) return;
  const note = el('p', { id: 'email-status', role: 'alert', class: 'warning',
    text: `Emails to this address stopped after ${status.hardBounces} refused deliveries (${status.reason || 'refused by the mail server'}). Save a corrected address to receive them again.` });
  $('#email').after(note);
}

async function init() {
  const [{ topics }, { publicKey }] = await Promise.all([api('/api/topics'), api('/api/push/public-key')]);
  state.topics = topics;
  state.publicKey = publicKey;
  try {
    state.me = await api('/api/me');
  } catch (err) {
    if (err.status !== 401 && err.status !== 403) throw err;
  }
  renderTopics();
  const detected = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  fillTimeZones((state.me && state.me.timeZone) || detected);
  if (state.me) {
    $('#email').value = state.me.email || '';
    $('#digest-time').value = state.me.digestTime;
    showEmailStatus(state.me.emailStatus);
  }
  showPushState();
  await renderInbox();

  $('#settings').addEventListener('submit', async (e) => {
    e.preventDefault();
    const status = $('#save-status');
    status.textContent = 'Saving…';
    try {
      await save();
      status.textContent = 'Saved.';
      showPushState();
    } catch (err) {
      status.textContent = `Not saved: ${err.message}`;
    }
  });
  $('#allow-push').addEventListener('click', allowNotifications);
  $('#clear-inbox').addEventListener('click', async () => {
    if (!state.me || !window.confirm('Clear all notifications from your inbox?')) return;
    await api('/api/me/inbox', { method: 'DELETE' });
    await renderInbox();
  });
}

init().catch((err) => {
  $('#save-status').textContent = `Herald could not load: ${err.message}`;
});
