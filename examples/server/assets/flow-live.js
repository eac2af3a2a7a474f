// The flow page and the "Continue on your phone" page: the server tells them on
// /s/{token}/events (Server-Sent Events) when the session moves to a phone (`handed_off`: the
// page says so, and the form here is put away) and when it ends (`ended`: finished on a phone,
// or by the owner's backend): the page then shows where the session stands, in place. Nothing
// is polled; without JavaScript, a link does it.
(function(){
'use strict';
const main = document.querySelector('main[data-events]');
if (!main || !window.EventSource) return;
const status = document.getElementById('live-status');
const events = new EventSource(main.dataset.events);
events.addEventListener('open', () => { main.dataset.live = 'open'; });
events.addEventListener('handed_off', () => {
  main.dataset.handedOff = '';
  if (status) status.textContent = status.dataset.handedOff;
  const form = document.getElementById('flow-form');
  if (form) form.hidden = true;
});
// The result replaces this page's content in place (no reload); if it cannot be fetched, the
// page goes to it instead. When the link has a return URL, the flow page answers with a
// redirect to it (the owner's site): the browser goes there.
events.addEventListener('ended', async () => {
  events.close();
  try {
    const response = await fetch(main.dataset.flow, { credentials: 'same-origin', redirect: 'manual' });
    if (response.type === 'opaqueredirect') { location.replace(main.dataset.flow); return; }
    if (!response.ok) throw new Error(String(response.status));
    const page = new DOMParser().parseFromString(await response.text(), 'text/html');
    const result = page.querySelector('main');
    if (!result) throw new Error('no main');
    document.title = page.title;
    main.replaceWith(document.importNode(result, true));
    const heading = document.querySelector('main h1');
    if (heading) { heading.tabIndex = -1; heading.focus(); }
  } catch (_) {
    location.replace(main.dataset.flow);
  }
});
// The person is acting on this page: its own answer shows the outcome.
document.addEventListener('submit', () => events.close());
})();
