// The funnel: tells the server that a browser ran this landing page's script, which makes its
// view a person's (scanners seldom run scripts). It runs only because the page's CSP nonce
// allows it, and sends the page's random view id once; the server counts each id once.
const viewed = document.querySelector('[data-view]');
if (viewed) {
  const body = new URLSearchParams({ view: viewed.dataset.view });
  fetch(location.pathname.replace(/\/$/, '') + '/seen', {
    method: 'POST', body, credentials: 'same-origin', keepalive: true,
  }).catch(() => {});
}
