// The flow page: when the session ends elsewhere (finished on a phone, or by the owner's
// backend), the server says so on /s/{token}/events (Server-Sent Events) and the page shows
// where the session stands. Nothing is polled; without JavaScript, a link does it.
(function(){
'use strict';
const main = document.querySelector('main[data-events]');
if (!main || !window.EventSource) return;
const events = new EventSource(main.dataset.events);
events.addEventListener('ended', () => { events.close(); location.reload(); });
// The person is acting on this page: its own answer shows the outcome.
document.addEventListener('submit', () => events.close());
})();
