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
  const url = event.notification.data && event.notification.data.url;
  if (url) event.waitUntil(self.clients.openWindow(url));
});
