// The dashboard: every change goes through the JSON API; the live parts (credits, links and
// their sessions, webhooks) are rendered and escaped on the server. They come from
// /dashboard/events (Server-Sent Events) as soon as something changes, and from /dashboard/live
// after the owner's own actions; nothing is polled.
(function(){
'use strict';
const $ = (id) => document.getElementById(id);
const P = $('dashboard').dataset.prefix;
const opened = {};
const last = {};
// The personal URLs made on this page, by link id: shown again after each live render.
const personal = {};
let focusLink = null;

async function api(method, path, body) {
  const init = {method, headers: {}};
  if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
  const res = await fetch(P + path, init);
  let data = {};
  try { data = await res.json(); } catch (e) {}
  if (!res.ok) throw new Error(data.error || ('HTTP ' + res.status));
  return data;
}

function newKey() {
  if (window.crypto && crypto.randomUUID) return 'topup-' + crypto.randomUUID();
  return 'topup-' + Date.now() + '-' + Math.random().toString(36).slice(2);
}

async function refresh() {
  let data;
  try {
    const res = await fetch(P + '/dashboard/live', {cache: 'no-store'});
    if (!res.ok) return;
    data = await res.json();
  } catch (e) { return; }
  show(data);
}

// Swaps in the live parts that changed, keeping open what the owner opened.
function show(data) {
  for (const k of ['credits', 'links', 'webhook-live']) {
    if (last[k] === data[k]) continue;
    last[k] = data[k];
    const el = $(k);
    el.innerHTML = data[k];
    for (const d of el.querySelectorAll('details')) {
      if (opened[d.dataset.id]) d.open = true;
    }
  }
  for (const id in personal) showPersonal(id);
  if (focusLink) {
    const d = document.querySelector('details[data-id="' + focusLink + '"]');
    if (d) { d.open = true; opened[focusLink] = true; d.scrollIntoView({block: 'nearest'}); focusLink = null; }
  }
}

document.addEventListener('toggle', (e) => {
  if (e.target.tagName === 'DETAILS' && e.target.dataset.id) opened[e.target.dataset.id] = e.target.open;
}, true);

// Links.
$('create-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('create-error').textContent = '';
  const kind = document.querySelector('input[name=limit]:checked').value;
  const body = {name: $('name').value, flow: $('flow').value, language: $('language').value.trim()};
  if (kind === 'multi') body.limit = {multi: Number($('uses').value)};
  else body.limit = kind;
  if ($('reference').value.trim()) body.reference = $('reference').value.trim();
  // Metadata: one `key=value` per line (the value may hold `=`); blank lines are skipped.
  const metadata = {};
  for (const line of $('metadata').value.split('\n')) {
    if (!line.trim()) continue;
    const at = line.indexOf('=');
    if (at < 1) { $('create-error').textContent = 'Metadata: write one key=value per line.'; return; }
    metadata[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  if (Object.keys(metadata).length) body.metadata = metadata;
  if ($('return-url').value.trim()) body.return_url = $('return-url').value.trim();
  if ($('dead-link-url').value.trim()) body.dead_link_url = $('dead-link-url').value.trim();
  if ($('expires').value) {
    const at = new Date($('expires').value);
    if (isNaN(at)) { $('create-error').textContent = 'The expiry is not a valid date.'; return; }
    body.expires_at = at.toISOString();
  }
  $('create').disabled = true;
  try {
    const link = await api('POST', '/api/links', body);
    focusLink = link.id;
    for (const f of ['name', 'reference', 'metadata', 'return-url', 'dead-link-url']) $(f).value = '';
    await refresh();
  } catch (err) {
    $('create-error').textContent = err.message;
  } finally {
    $('create').disabled = false;
  }
});

// Personal links: the URL and its QR code for one recipient's reference.
function showPersonal(id) {
  const box = $('personal-' + id);
  if (!box) return;
  const made = personal[id];
  box.querySelector('img').src = made.qr_svg;
  $('personal-url-' + id).value = made.url;
  box.hidden = false;
}
document.addEventListener('submit', async (e) => {
  const form = e.target.closest('form[data-personal]');
  if (!form) return;
  e.preventDefault();
  const id = form.dataset.personal;
  $('personal-error-' + id).textContent = '';
  try {
    personal[id] = await api('POST', '/api/links/' + id + '/personal', {reference: $('personal-ref-' + id).value.trim()});
    showPersonal(id);
  } catch (err) {
    $('personal-error-' + id).textContent = err.message;
  }
});

// Account settings: the public profile and the return settings, saved at once.
$('profile-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('profile-error').textContent = '';
  $('profile-saved').textContent = '';
  const body = {
    return_origins: $('return-origins').value.split('\n').map((o) => o.trim()).filter((o) => o),
    return_outcome: $('return-outcome').checked,
  };
  if ($('display-name').value.trim()) body.display_name = $('display-name').value.trim();
  if ($('support-url').value.trim()) body.support_url = $('support-url').value.trim();
  $('profile-save').disabled = true;
  try {
    await api('PUT', '/api/account/profile', body);
    $('profile-saved').textContent = 'Saved.';
  } catch (err) {
    $('profile-error').textContent = err.message;
  } finally {
    $('profile-save').disabled = false;
  }
});
$('return-secret-rotate').addEventListener('click', async () => {
  $('return-secret-error').textContent = '';
  $('return-secret-rotate').disabled = true;
  try {
    const answer = await api('POST', '/api/account/return-secret');
    $('return-secret-shown').value = answer.secret;
    $('return-secret-new').hidden = false;
  } catch (err) {
    $('return-secret-error').textContent = err.message;
  } finally {
    $('return-secret-rotate').disabled = false;
  }
});

// Credits.
let topupKey = newKey();
$('topup-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('topup-error').textContent = '';
  $('topup').disabled = true;
  try {
    await api('POST', '/api/credits', {amount: Number($('topup-amount').value), idempotency_key: topupKey});
    topupKey = newKey();
    await refresh();
  } catch (err) {
    $('topup-error').textContent = err.message;
  } finally {
    $('topup').disabled = false;
  }
});

// Webhooks.
$('webhook-use-inbox').addEventListener('click', () => {
  $('webhook-url').value = $('inbox-url') ? $('inbox-url').textContent : '';
});
$('webhook-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('webhook-error').textContent = '';
  $('webhook-save').disabled = true;
  try {
    const body = {url: $('webhook-url').value};
    body.event_types = Array.from(document.querySelectorAll('input[name=event-type]:checked'), (box) => box.value);
    if ($('webhook-secret').value.trim()) body.secret = $('webhook-secret').value.trim();
    const answer = await api('PUT', '/api/webhook', body);
    $('webhook-secret').value = '';
    if (answer.secret) { $('webhook-secret-shown').value = answer.secret; $('webhook-new-secret').hidden = false; }
    else { $('webhook-new-secret').hidden = true; }
    await refresh();
  } catch (err) {
    $('webhook-error').textContent = err.message;
  } finally {
    $('webhook-save').disabled = false;
  }
});

// The buttons in the live parts: copy, deactivate (pressed twice), review, stop sending, retry.
document.addEventListener('click', async (e) => {
  const copy = e.target.closest('[data-copy]');
  if (copy) {
    const field = $(copy.dataset.copy);
    try { await navigator.clipboard.writeText(field.value); }
    catch (err) { field.select(); document.execCommand('copy'); }
    copy.textContent = 'Copied';
    setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
    return;
  }
  const off = e.target.closest('[data-deactivate]');
  if (off) {
    if (!off.dataset.armed) {
      off.dataset.armed = '1';
      off.textContent = 'Deactivate for good?';
      setTimeout(() => { delete off.dataset.armed; off.textContent = 'Deactivate'; }, 4000);
      return;
    }
    off.disabled = true;
    try { await api('POST', '/api/links/' + off.dataset.deactivate + '/deactivate'); }
    catch (err) { alert(err.message); }
    await refresh();
    return;
  }
  // Erasing a reference (and a link's metadata) is final, as deactivating: pressed twice.
  const redact = e.target.closest('[data-redact-link], [data-redact-session]');
  if (redact) {
    const label = redact.textContent;
    if (!redact.dataset.armed) {
      redact.dataset.armed = '1';
      redact.textContent = 'Erase for good?';
      setTimeout(() => { delete redact.dataset.armed; redact.textContent = label; }, 4000);
      return;
    }
    redact.disabled = true;
    const path = redact.dataset.redactLink
      ? '/api/links/' + redact.dataset.redactLink + '/redact'
      : '/api/sessions/' + redact.dataset.redactSession + '/redact';
    try { await api('POST', path); }
    catch (err) { alert(err.message); }
    await refresh();
    return;
  }
  const review = e.target.closest('[data-review]');
  if (review) {
    review.disabled = true;
    try { await api('POST', '/api/sessions/' + review.dataset.review + '/review', {decision: review.dataset.decision}); }
    catch (err) { alert(err.message); }
    await refresh();
    return;
  }
  const t = e.target;
  try {
    if (t.id === 'webhook-disable') { await api('DELETE', '/api/webhook'); }
    else if (t.dataset && t.dataset.retry) { t.disabled = true; await api('POST', '/api/webhook/deliveries/' + t.dataset.retry + '/retry'); }
    else return;
  } catch (err) { $('webhook-error').textContent = err.message; }
  await refresh();
});

// Live: the server sends `live` (the parts) when the stream opens and after each change; the
// browser reconnects by itself, resuming after the last `change` it got (Last-Event-ID).
if (window.EventSource) {
  const live = new EventSource(P + '/dashboard/events');
  live.addEventListener('live', (e) => {
    try { show(JSON.parse(e.data)); } catch (err) {}
    $('dashboard').dataset.live = 'open';
  });
  live.addEventListener('error', () => { $('dashboard').dataset.live = 'reconnecting'; });
}
})();
