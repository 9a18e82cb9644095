// What the tests read, and what a person trying the page sees: the gated scripts that ran
// and every gtag call.
window.ran = [];
window.gtagCalls = [];
window.dataLayer = window.dataLayer || [];
window.showRecord = () => {
  const ran = document.getElementById("ran");
  const calls = document.getElementById("gtag");
  if (ran) ran.textContent = window.ran.join(", ");
  if (calls) calls.textContent = window.gtagCalls.map((c) => JSON.stringify(c)).join("\n");
};
window.ran.push = function (...items) {
  const length = Array.prototype.push.apply(this, items);
  window.showRecord();
  return length;
};
window.gtag = function () {
  window.gtagCalls.push(JSON.parse(JSON.stringify(Array.from(arguments))));
  window.showRecord();
};
