// Herald settings page. No framework and no build step: one module, no inline script (the CSP forbids it).
const $ = (sel) => document.querySelector(sel);
const state = { topics: [], me: null, publicKey: null, csrf: null };

async function csrfToken(refresh = false) {
  if (!state.csrf || refresh) {
    const res = await fetch('/api/csrf', { credentials: 'same-origin' });
    state.csrf = (await res.json()).token;
  }
  return state.csrf;
}

async function api(path, options = {}, retried = false) {
  const method = options.method || 'GET';
  const headers = { ...(options.body ? { 'content-type': 'application/json' } : {}) };
  if (method !== 'GET') headers['x-csrf-token'] = await csrfToken();
  const res = await fetch(path, { credentials: 'same-origin', method, headers, body: options.body ? JSON.stringify(options.body) : undefined });
  if (res.status === 204) return null;
  const body = await res.json().catch(() => ({}));
  // The CSRF secret cookie can expire or be cleared: fetch a fresh token once and try again.
  if (res.status === 403 && /csrf/i.test(body.error || '') && !retried) {
    await csrfToken(true);
    return api(path, options, true);
  }
  if (!res.ok) {
    const err = new Error(body.error || `request failed (${res.status})`);
    err.status = res.status;
    err.fields = body.fields || [];
    err.body = body;
    throw err;
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

const say = (sel, text) => { $(sel).textContent = text; };
// Inbox items name a catalog topic or one of the reader's own alerts (declared below; read at call time).
const topicName = (id) => (state.topics.find((t) => t.id === id) || alerts.list.find((a) => a.id === id) || { name: id }).name;
const fmtTime = (iso) => new Date(iso).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });

// ---------- Topics ----------

function tuningNote(t, f) {
  const notes = [];
  if (f.mutedUntil && Date.parse(f.mutedUntil) > Date.now()) notes.push(`Muted until ${fmtTime(f.mutedUntil)}`);
  if (f.minScore) notes.push(`Only stronger matches (level ${f.minScore})`);
  if (notes.length === 0) return null;
  return el('span', { class: 'tuning' }, notes.join(' · '), ' ',
    el('button', { type: 'button', class: 'link', 'aria-label': `Reset ${t.name}: unmute and show all matches`, text: 'Reset', onclick: () => tuneTopic(t.id, 'reset') }));
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
    const fs = el('fieldset', { class: 'group', 'data-group': group }, el('legend', { text: group }));
    for (const t of topics) {
      const f = follows[t.id] || { cadence: 'off', channels: ['push'] };
      const cadence = el('select', { id: `cadence-${t.id}`, 'data-topic': t.id });
      for (const [value, label] of [['off', 'Off'], ['instant', 'Instant'], ['daily', 'Daily']]) {
        cadence.append(el('option', { value, selected: f.cadence === value, text: label }));
      }
      const channel = (c, label) =>
        el('label', { class: 'inline' },
          el('input', { type: 'checkbox', id: `${c}-${t.id}`, 'data-channel': c, checked: f.channels.includes(c), 'aria-label': `${t.name}: ${label}` }), label);
      const channels = el('span', { class: 'channels', role: 'group', 'aria-label': `${t.name}: channels`, hidden: f.cadence !== 'instant' },
        channel('push', 'Push'), channel('email', 'Email'));
      cadence.addEventListener('change', () => { channels.hidden = cadence.value !== 'instant'; });
      fs.append(
        el('div', { class: 'topic', 'data-topic-row': t.id, 'data-search': `${t.name} ${t.group} ${t.description}`.toLowerCase() },
          el('label', { for: `cadence-${t.id}`, class: 'name', text: t.name }),
          el('span', { class: 'desc', text: t.description }, tuningNote(t, f)),
          el('span', { class: 'controls' }, cadence, channels)),
      );
    }
    root.append(fs);
  }
  filterTopics();
}

function filterTopics() {
  const q = $('#topic-search').value.trim().toLowerCase();
  let shown = 0;
  for (const row of document.querySelectorAll('[data-topic-row]')) {
    const match = !q || row.getAttribute('data-search').includes(q);
    row.hidden = !match;
    if (match) shown++;
  }
  for (const fs of document.querySelectorAll('fieldset[data-group]')) {
    fs.hidden = !fs.querySelector('[data-topic-row]:not([hidden])');
  }
  say('#topic-count', q ? `${shown} of ${state.topics.length} topics match “${q}”.` : '');
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

async function tuneTopic(topicId, action) {
  await api(`/api/me/topics/${encodeURIComponent(topicId)}/${action}`, { method: 'POST' });
  state.me = await api('/api/me');
  renderTopics();
}

// ---------- Time settings ----------

function fillTimeZones(selected) {
  const zones = typeof Intl.supportedValuesOf === 'function' ? [...Intl.supportedValuesOf('timeZone')] : [];
  if (!zones.includes('UTC')) zones.unshift('UTC');
  if (!zones.includes(selected)) zones.unshift(selected);
  $('#timezone').replaceChildren(...zones.map((z) => el('option', { value: z, selected: z === selected, text: z.replace(/_/g, ' ') })));
}

function showQuietFields() {
  const on = $('#quiet-on').checked;
  for (const id of ['#quiet-from', '#quiet-to', '#quiet-breaking']) $(id).disabled = !on;
}

function fillTimeSettings() {
  const detected = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const zone = (state.me && state.me.timeZone) || detected;
  fillTimeZones(zone);
  say('#tz-hint', zone === detected ? `Detected from this browser: ${detected}.` : `This browser is in ${detected}.`);
  const me = state.me;
  if (!me) return showQuietFields();
  $('#digest-time').value = me.digestTime;
  const d = me.delivery;
  $('#quiet-on').checked = !!d.quietHours;
  if (d.quietHours) {
    $('#quiet-from').value = d.quietHours.from;
    $('#quiet-to').value = d.quietHours.to;
  }
  $('#quiet-breaking').checked = d.breakingThroughQuiet;
  $('#push-cap').value = d.dailyPushCap === null ? '' : String(d.dailyPushCap);
  $('#held-alerts').value = d.heldAlerts;
  $('#digest-pushed').value = d.digestPushed;
  $('#digest-empty').checked = d.digestSendEmpty;
  showQuietFields();
}

// ---------- Email ----------

function showEmailState() {
  const me = state.me;
  const input = $('#email');
  if (document.activeElement !== input) input.value = (me && (me.pendingEmail || me.email)) || '';
  $('#resend-confirm').hidden = !(me && me.pendingEmail);
  $('#remove-email').hidden = !(me && (me.email || me.pendingEmail));
  if (!me || (!me.email && !me.pendingEmail)) say('#email-state', 'We send one confirmation link; nothing else reaches the address until you open it.');
  else if (me.pendingEmail) say('#email-state', `Check ${me.pendingEmail} for a confirmation link.${me.email ? ` Until then alerts still go to ${me.email}.` : ' Nothing else is sent to it until you open the link.'}`);
  else say('#email-state', `Confirmed: daily digests and email alerts go to ${me.email}.`);
}

// ---------- Save ----------

function collectSettings() {
  const email = $('#email').value.trim();
  const cap = $('#push-cap').value.trim();
  return {
    email: email || null,
    timeZone: $('#timezone').value,
    digestTime: $('#digest-time').value,
    delivery: {
      quietHours: $('#quiet-on').checked ? { from: $('#quiet-from').value, to: $('#quiet-to').value } : null,
      breakingThroughQuiet: $('#quiet-breaking').checked,
      dailyPushCap: cap === '' ? null : Number(cap),
      heldAlerts: $('#held-alerts').value,
      digestPushed: $('#digest-pushed').value,
      digestSendEmpty: $('#digest-empty').checked,
    },
    topics: collectTopics(),
  };
}

const FIELD_INPUTS = { email: '#email', timeZone: '#timezone', digestTime: '#digest-time', 'delivery.quietHours.from': '#quiet-from', 'delivery.quietHours.to': '#quiet-to', 'delivery.dailyPushCap': '#push-cap' };

function markInvalid(fields) {
  for (const sel of Object.values(FIELD_INPUTS)) $(sel).removeAttribute('aria-invalid');
  for (const f of fields) {
    const sel = FIELD_INPUTS[f.field];
    if (sel) $(sel).setAttribute('aria-invalid', 'true');
  }
}

async function save() {
  const body = collectSettings();
  try {
    state.me = state.me ? await api('/api/me', { method: 'PUT', body }) : await api('/api/subscribers', { method: 'POST', body });
    markInvalid([]);
  } catch (err) {
    markInvalid(err.fields || []);
    throw err;
  }
  $('#delete-section').hidden = false;
  showEmailState();
  return state.me;
}

// ---------- Push ----------

function sameBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function urlBase64ToUint8Array(b64) {
  const padded = (b64 + '='.repeat((4 - (b64.length % 4)) % 4)).replace(/-/g, '+').replace(/_/g, '/');
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

const pushSupported = () => 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;

function showPushState() {
  const button = $('#allow-push');
  const devices = (state.me && state.me.devices) || [];
  $('#test-push').hidden = devices.length === 0;
  renderDevices(devices);
  let bannerWanted = false;
  if (!pushSupported()) {
    say('#push-state', 'This browser cannot receive push notifications. Choose email for your alerts.');
    button.disabled = true;
  } else if (Notification.permission === 'denied') {
    say('#push-state', 'Notifications are blocked for this site. To unblock: open the site settings (the icon left of the address), set Notifications to Allow, then reload this page.');
    button.disabled = true;
  } else if (Notification.permission === 'granted' && devices.length > 0) {
    say('#push-state', `Notifications are allowed. ${devices.length} device${devices.length === 1 ? '' : 's'} get${devices.length === 1 ? 's' : ''} your instant alerts.`);
    button.textContent = 'Register this browser again';
  } else {
    say('#push-state', 'Get instant news alerts in this browser. Your browser asks for permission when you press the button.');
    bannerWanted = true;
  }
  $('#push-banner').hidden = !bannerWanted;
}

function renderDevices(devices) {
  const list = $('#devices');
  if (devices.length === 0) {
    list.replaceChildren(el('li', { class: 'empty', text: 'No device gets notifications yet.' }));
    return;
  }
  list.replaceChildren(...devices.map((d) =>
    el('li', {},
      el('span', { text: `${d.service} · added ${fmtTime(d.createdAt)}` }),
      el('button', { type: 'button', class: 'secondary small', 'aria-label': `Remove device ${d.service} added ${fmtTime(d.createdAt)}`, text: 'Remove',
        onclick: async () => {
          await api(`/api/me/push-subscriptions/${d.id}`, { method: 'DELETE' });
          state.me = await api('/api/me');
          showPushState();
        } }))));
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
    const key = urlBase64ToUint8Array(state.publicKey);
    // After the operator rotated the VAPID keys, a subscription made with the old key must go first:
    // browsers refuse to subscribe again with a different key while it exists.
    const existing = await registration.pushManager.getSubscription();
    const existingKey = existing && existing.options && existing.options.applicationServerKey;
    if (existing && existingKey && !sameBytes(new Uint8Array(existingKey), key)) await existing.unsubscribe();
    const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    await api('/api/me/push-subscriptions', { method: 'POST', body: subscription.toJSON() });
    state.me = await api('/api/me');
    status.textContent = 'Notifications are on for this browser.';
  } catch (err) {
    status.textContent = `Could not turn on notifications: ${err.message}`;
  }
  showPushState();
}

async function testPush() {
  try {
    const { devices } = await api('/api/me/push-test', { method: 'POST' });
    const ok = devices.filter((d) => d.outcome === 'sent').length;
    say('#test-push-status', `Test notification sent to ${ok} of ${devices.length} device${devices.length === 1 ? '' : 's'}.`);
    state.me = await api('/api/me');
    showPushState();
  } catch (err) {
    say('#test-push-status', `No test notification: ${err.message}`);
  }
}

// ---------- Inbox ----------

async function renderInbox() {
  const list = $('#inbox');
  if (!state.me) return;
  const { items, unread } = await api('/api/me/inbox');
  say('#unread', unread > 0 ? `${unread} unread` : '');
  if (items.length === 0) {
    list.replaceChildren(el('li', { class: 'empty', text: 'No alerts yet.' }));
    return;
  }
  const act = (label, aria, fn) => el('button', { type: 'button', class: 'secondary small', 'aria-label': aria, text: label, onclick: async () => {
    try {
      await fn();
      await renderInbox();
    } catch (err) {
      say('#inbox-status', err.message);
    }
  } });
  list.replaceChildren(...items.map((i) => {
    const name = topicName(i.topicId);
    const read = () => api('/api/me/inbox/read', { method: 'POST', body: { storyId: i.storyId } });
    return el('li', { class: i.read ? 'read' : 'unread', 'data-story': i.storyId },
      el('a', { href: i.url, text: i.title, rel: 'noopener noreferrer', target: '_blank', onclick: () => { if (!i.read) read().then(renderInbox); } }),
      el('div', { class: 'meta' }, el('span', { class: 'topic-tag', text: name }), ` ${i.why} · ${i.channels.join(' and ')} · ${fmtTime(i.at)}${i.read ? '' : ' · unread'}`),
      el('div', { class: 'buttons' },
        i.read ? null : act('Mark read', `Mark read: ${i.title}`, read),
        act('Less like this', `Less like this (${name}): ${i.title}`, async () => {
          await api(`/api/me/topics/${encodeURIComponent(i.topicId)}/less`, { method: 'POST' });
          say('#inbox-status', `${name}: only stronger matches from now on.`);
          state.me = await api('/api/me');
          renderTopics();
        }),
        act('Mute this topic for 7 days', `Mute this topic for 7 days: ${name}`, async () => {
          await api(`/api/me/topics/${encodeURIComponent(i.topicId)}/mute`, { method: 'POST' });
          say('#inbox-status', `${name} is muted for 7 days.`);
          state.me = await api('/api/me');
          renderTopics();
        })));
  }));
}

// ---------- Own alerts (the alerts API of the classification stage) ----------

const alerts = { list: [], editing: null, timer: null, seq: 0 };

async function loadAlerts() {
  const section = $('#alerts-section');
  if (!state.me) {
    section.hidden = true;
    return;
  }
  try {
    alerts.list = (await api('/api/me/alerts')).alerts;
  } catch (err) {
    // A server without the own-alerts API (404) simply has no such section.
    section.hidden = true;
    if (err.status !== 404) say('#save-status', `Your own alerts could not load: ${err.message}`);
    return;
  }
  section.hidden = false;
  renderAlerts();
}

function renderAlerts() {
  const list = $('#alerts');
  if (alerts.list.length === 0) {
    list.replaceChildren(el('li', { class: 'empty', text: 'No alerts of your own yet.' }));
    return;
  }
  list.replaceChildren(...alerts.list.map((a) => {
    const del = el('button', { type: 'button', class: 'secondary small', 'aria-label': `Delete alert ${a.name}`, text: 'Delete' });
    del.addEventListener('click', async () => {
      // Two presses: the first asks, the second deletes.
      if (del.getAttribute('data-armed') !== 'true') {
        del.setAttribute('data-armed', 'true');
        del.textContent = 'Really delete?';
        del.setAttribute('aria-label', `Really delete alert ${a.name}?`);
        return;
      }
      await api(`/api/me/alerts/${encodeURIComponent(a.id)}`, { method: 'DELETE' });
      await loadAlerts();
    });
    return el('li', { 'data-alert': a.id },
      el('strong', { text: a.name }), ` · ${a.cadence === 'daily' ? 'Daily' : `Instant (${a.channels.join(', ') || 'no channel'})`}`,
      el('code', { text: a.query }),
      el('div', { class: 'buttons' },
        el('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit or rename alert ${a.name}`, text: 'Edit or rename', onclick: () => openEditor(a) }),
        del));
  }));
}

function openEditor(alert) {
  alerts.editing = alert || null;
  say('#alert-editor-h', alert ? `Edit “${alert.name}”` : 'New alert');
  $('#alert-name').value = alert ? alert.name : '';
  $('#alert-query').value = alert ? alert.query : '';
  $('#alert-cadence').value = alert && alert.cadence === 'daily' ? 'daily' : 'instant';
  $('#alert-push').checked = alert ? alert.channels.includes('push') : true;
  $('#alert-email').checked = alert ? alert.channels.includes('email') : false;
  $('#alert-channels').hidden = $('#alert-cadence').value !== 'instant';
  say('#alert-status', '');
  $('#alert-preview').replaceChildren();
  $('#alert-editor').hidden = false;
  $('#alert-name').focus();
  if (alert) schedulePreview();
}

function schedulePreview() {
  clearTimeout(alerts.timer);
  alerts.timer = setTimeout(runPreview, 350);
}

async function runPreview() {
  const query = $('#alert-query').value;
  const status = $('#alert-query-status');
  const box = $('#alert-query');
  if (!query.trim()) {
    status.textContent = '';
    box.removeAttribute('aria-invalid');
    $('#alert-preview').replaceChildren();
    return;
  }
  const seq = ++alerts.seq;
  let result;
  try {
    result = await api('/api/me/alerts/preview', { method: 'POST', body: { query } });
  } catch (err) {
    if (seq !== alerts.seq) return;
    box.setAttribute('aria-invalid', 'true');
    status.textContent = err.body && typeof err.body.position === 'number'
      ? `${err.message} (at character ${err.body.position + 1}${err.body.expected ? `; expected ${err.body.expected}` : ''})`
      : err.message;
    $('#alert-preview').replaceChildren();
    return;
  }
  if (seq !== alerts.seq) return;
  box.removeAttribute('aria-invalid');
  const perDay = typeof result.alertsPerDay === 'number' ? result.alertsPerDay : result.alerts / result.days;
  const rounded = perDay < 1 && perDay > 0 ? 'less than one' : String(Math.round(perDay));
  status.textContent = `Looks good: about ${rounded} alert${rounded === '1' ? '' : 's'} a day (${result.matched} of ${result.scanned} stories of the last ${result.days} days matched).`;
  $('#alert-preview').replaceChildren(...(result.stories.length === 0
    ? [el('li', { class: 'empty', text: 'No recent story matches yet.' })]
    : result.stories.slice(0, 5).map((st) => el('li', {},
      el('a', { href: st.url, text: st.title, rel: 'noopener noreferrer', target: '_blank' }),
      el('div', { class: 'meta', text: `${st.why} · ${fmtTime(st.publishedAt)}` })))));
}

async function saveAlert() {
  const cadence = $('#alert-cadence').value;
  const body = {
    name: $('#alert-name').value.trim(),
    query: $('#alert-query').value,
    cadence,
    channels: cadence === 'instant' ? ['push', 'email'].filter((c) => $(`#alert-${c}`).checked) : [],
  };
  try {
    if (alerts.editing) await api(`/api/me/alerts/${encodeURIComponent(alerts.editing.id)}`, { method: 'PATCH', body });
    else await api('/api/me/alerts', { method: 'POST', body });
  } catch (err) {
    say('#alert-status', `Not saved: ${err.message}`);
    return;
  }
  $('#alert-editor').hidden = true;
  await loadAlerts();
  $('#alert-new').focus();
}

// ---------- Wiring ----------

function bind(sel, event, fn) {
  $(sel).addEventListener(event, fn);
}

// Emails stop after repeated hard bounces: say so next to the address, so the reader can correct it.
function showEmailStatus(status) {
  const old = $('#email-status');
  if (old) old.remove();
  if (!status || !status.disabled) return;
  const note = el('p', { id: 'email-status', role: 'alert', class: 'warning',
    text: `Emails to this address stopped after ${status.hardBounces} refused deliveries (${status.reason || 'refused by the mail server'}). Save a corrected address, or save this one again once it works, to get a confirmation link and receive them again.` });
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
  fillTimeSettings();
  showEmailState();
  showEmailStatus(state.me && state.me.emailStatus);
  showPushState();
  $('#delete-section').hidden = !state.me;
  await loadAlerts();
  await renderInbox();

  bind('#topic-search', 'input', filterTopics);
  bind('#alert-new', 'click', () => openEditor(null));
  bind('#alert-cancel', 'click', () => {
    $('#alert-editor').hidden = true;
    $('#alert-new').focus();
  });
  bind('#alert-query', 'input', schedulePreview);
  bind('#alert-cadence', 'change', () => { $('#alert-channels').hidden = $('#alert-cadence').value !== 'instant'; });
  bind('#alert-save', 'click', saveAlert);
  bind('#quiet-on', 'change', showQuietFields);
  bind('#settings', 'submit', async (e) => {
    e.preventDefault();
    say('#save-status', 'Saving…');
    try {
      const first = !state.me;
      await save();
      say('#save-status', state.me.notice ? `Saved, but ${state.me.notice}.` : 'Saved.');
      showPushState();
      await renderInbox();
      if (first) await loadAlerts();
    } catch (err) {
      say('#save-status', `Not saved: ${err.message}`);
    }
  });
  bind('#allow-push', 'click', allowNotifications);
  bind('#banner-enable', 'click', allowNotifications);
  bind('#test-push', 'click', testPush);
  bind('#resend-confirm', 'click', async () => {
    try {
      const r = await api('/api/me/email/resend', { method: 'POST' });
      say('#email-state', r.message);
    } catch (err) {
      say('#email-state', err.message);
    }
  });
  bind('#remove-email', 'click', async () => {
    state.me = await api('/api/me', { method: 'PUT', body: { email: null } });
    $('#email').value = '';
    showEmailState();
  });
  bind('#read-all', 'click', async () => {
    if (!state.me) return;
    await api('/api/me/inbox/read-all', { method: 'POST' });
    await renderInbox();
  });
  // Clearing cannot be undone: a confirm step in the page (not window.confirm, which screen readers and tests handle poorly).
  bind('#clear-inbox', 'click', () => {
    $('#clear-confirm').hidden = false;
    $('#clear-yes').focus();
  });
  bind('#clear-no', 'click', () => {
    $('#clear-confirm').hidden = true;
    $('#clear-inbox').focus();
  });
  bind('#clear-yes', 'click', async () => {
    $('#clear-confirm').hidden = true;
    if (state.me) await api('/api/me/inbox', { method: 'DELETE' });
    await renderInbox();
    say('#inbox-status', 'Inbox cleared.');
    $('#clear-inbox').focus();
  });
  bind('#link-form', 'submit', async (e) => {
    e.preventDefault();
    try {
      const r = await api('/api/manage-link', { method: 'POST', body: { email: $('#link-email').value.trim() } });
      say('#link-status', r.message);
    } catch (err) {
      say('#link-status', err.message);
    }
  });
  bind('#delete-me', 'click', () => {
    $('#delete-confirm').hidden = false;
    $('#delete-yes').focus();
  });
  bind('#delete-no', 'click', () => {
    $('#delete-confirm').hidden = true;
  });
  bind('#delete-yes', 'click', async () => {
    await api('/api/me', { method: 'DELETE' });
    state.me = null;
    say('#delete-status', 'Everything is deleted. Save new settings to start again.');
    $('#delete-confirm').hidden = true;
    renderTopics();
    showEmailState();
    showPushState();
    $('#inbox').replaceChildren(el('li', { class: 'empty', text: 'No alerts yet.' }));
  });
  navigator.serviceWorker?.addEventListener('message', (e) => {
    if (e.data && e.data.type === 'inbox-changed') renderInbox();
  });
}

init().catch((err) => {
  say('#save-status', `Herald could not load: ${err.message}`);
});
