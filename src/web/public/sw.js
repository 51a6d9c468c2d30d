// Herald service worker (scope "/"): shows pushed alerts; a click opens the story and marks it read.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** Shown when a push has no title or cannot be read: the reader still learns that an alert came. */
const FALLBACK_TITLE = 'New alert from Herald';

/**
 * The notification for one push's text (null when the push carried none): title and options. Never null, because
 * every push must show a notification (userVisibleOnly), or Chrome shows its own "site updated in the background"
 * line and may revoke the subscription after repeated silent pushes.
 */
function notificationFor(text) {
  let alert = null;
  try {
    alert = text ? JSON.parse(text) : null;
  } catch {
    alert = null;
  }
  if (!alert || typeof alert !== 'object') alert = {};
  const str = (v) => (typeof v === 'string' && v.trim() !== '' ? v : undefined);
  const url = str(alert.url);
  const storyId = str(alert.storyId);
  return {
    title: str(alert.title) ?? FALLBACK_TITLE,
    options: {
      body: [str(alert.body), str(alert.why)].filter(Boolean).join('\n'),
      // Same story, same tag: an update replaces the earlier notification instead of stacking.
      ...(storyId ? { tag: storyId } : {}),
      // A bundle's notification lists the stories it carried: its click counts on their alerts (openAlert).
      data: { url, storyId, ...(Array.isArray(alert.stories) ? { stories: alert.stories.filter((id) => typeof id === 'string') } : {}) },
    },
  };
}

self.addEventListener('push', (event) => {
  const { title, options } = notificationFor(event.data ? event.data.text() : null);
  event.waitUntil(self.registration.showNotification(title, options).then(() => tellPages({ type: 'inbox-changed' })));
});

async function tellPages(message) {
  const pages = await self.clients.matchAll({ type: 'window' });
  for (const page of pages) page.postMessage(message);
}

/** POSTs with the reader's cookie; the CSRF token comes from the same origin, like the page's. */
async function post(path, body) {
  const res = await fetch('/api/csrf', { credentials: 'same-origin' });
  const { token } = await res.json();
  return fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': token },
    body: JSON.stringify(body),
  });
}

async function markRead(storyId) {
  await post('/api/me/inbox/read', { storyId });
  await tellPages({ type: 'inbox-changed' });
}

async function openStory(url) {
  try {
    const opened = await self.clients.openWindow(url);
    if (opened !== undefined) return;
  } catch {
    // openWindow needs the click's user activation; without it, show the story in an open Herald tab.
  }
  const pages = await self.clients.matchAll({ type: 'window' });
  if (pages[0]) await pages[0].navigate(url);
}

async function openAlert(data) {
  if (!data || !data.url) return;
  // The click is also counted once per alert in the delivery ledger (clicked per topic and channel).
  await Promise.allSettled([
    data.storyId ? markRead(data.storyId) : null,
    // A bundle names the stories it carried: their alerts are the ones counted (the server checks each was).
    data.storyId ? post('/api/me/clicks', { storyId: data.storyId, channel: 'push', ...(Array.isArray(data.stories) ? { stories: data.stories } : {}) }) : null,
    openStory(data.url),
  ]);
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const done = openAlert(event.notification.data);
  // Browsers offer automation no way to click a notification, so tests dispatch this event from script, and
  // waitUntil refuses script-made events: the work has started either way.
  if (event.isTrusted) event.waitUntil(done);
});
