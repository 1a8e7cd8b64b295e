// quanta tour: records load errors and checks every image, audio element and plot once the page
// has loaded; the result goes to #selfcheck (the browser tests read it).
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e)));
const origError = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); origError(...a); };
window.addEventListener('load', async () => {
  const images = [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth}));
  const audio = await Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(res => {
    const done = () => res({label: a.dataset.label, duration: a.duration || 0});
    if (a.readyState >= 1) done(); else { a.addEventListener('loadedmetadata', done); a.addEventListener('error', done); }
  })));
  const plots = [...document.querySelectorAll('figure svg')].map(s => s.getBoundingClientRect().width);
  document.getElementById('selfcheck').textContent = JSON.stringify({images, audio, plots, errors: window.__errors});
});
