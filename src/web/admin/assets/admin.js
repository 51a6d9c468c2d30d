// Herald admin console: live numbers over server-sent events, charts refreshed each minute.
const live = document.querySelector('#live');
if (live && 'EventSource' in window) {
  const status = document.querySelector('#live-status');
  const source = new EventSource(live.getAttribute('data-events'));
  source.addEventListener('snapshot', (event) => {
    const snapshot = JSON.parse(event.data);
    for (const row of snapshot.queues) {
      const tr = live.querySelector(`tr[data-queue="${CSS.escape(row.queue)}"]`);
      if (!tr) continue;
      for (const k of ['waiting', 'active', 'delayed', 'failed']) {
        const td = tr.querySelector(`td[data-k="${k}"]`);
        if (td) td.textContent = String(row[k]);
      }
      tr.querySelector('td[data-k="failed"]')?.classList.toggle('bad', row.failed > 0);
    }
    if (status) status.textContent = `Live: updated ${new Date(snapshot.at).toLocaleTimeString()}.`;
  });
  source.addEventListener('error', () => {
    if (status) status.textContent = 'Live updates paused: reconnecting…';
  });
}

async function refreshCharts() {
  for (const figure of document.querySelectorAll('figure[data-chart]')) {
    const res = await fetch(`/admin/charts/${figure.getAttribute('data-chart')}.svg?range=${figure.getAttribute('data-range')}`, { credentials: 'same-origin' });
    if (res.ok) figure.innerHTML = await res.text();
  }
}
if (document.querySelector('figure[data-chart]')) setInterval(() => void refreshCharts(), 60_000);
