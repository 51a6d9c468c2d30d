// Herald service worker: shows alerts pushed by the server and opens the story on click.
self.addEventListener('push', (event) => {
  let alert;
  try {
    alert = event.data ? event.data.json() : null;
  } catch {
    alert = null;
  }
  if (!alert) return;
  const body = [alert.body, alert.why].filter(Boolean).join('\n');
  event.waitUntil(
    self.registration.showNotification(alert.title, {
      body,
      // Same story, same tag: an update replaces the earlier notification instead of stacking.
      tag: alert.storyId,
      data: { url: alert.url, storyId: alert.storyId },
    }),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  // Counted once per alert in the delivery ledger; the cookie identifies the reader, a failure is harmless.
  const click = data.storyId
    ? fetch('/api/me/clicks', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ storyId: data.storyId, channel: 'push' }) }).catch(() => undefined)
    : Promise.resolve();
  event.waitUntil(Promise.all([click, data.url ? self.clients.openWindow(data.url) : undefined]));
});
