// The platform's own start-up; the test page's query string may set consent.js's options
// (`subject` and `token` as a signed-in learner's).
const query = new URLSearchParams(location.search);
const script = document.querySelector('script[src$="sdk/consent.js"]');
const options = { baseUrl: query.get("api") || script.src.replace(/sdk\/consent\.js$/, "") };
for (const name of ["region", "language", "token"]) {
  if (query.has(name)) options[name] = query.get(name);
}
if (query.has("subject")) options.subjectId = query.get("subject");
window.changes = [];
window.consentReady = window.Consentry.load(options);
window.Consentry.onChange((state) => window.changes.push(state));
