// One press sends a form once: a form marked `data-submit-once` disables its submit button as
// soon as it is sent (so one press of "Start verification" starts one session).
for (const form of document.querySelectorAll('form[data-submit-once]')) {
  form.addEventListener('submit', () => {
    const button = form.querySelector('button[type=submit]');
    setTimeout(() => { button.disabled = true; }, 0);
  });
}
