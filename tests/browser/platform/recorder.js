// What the tests read: the gated scripts that ran, and every gtag call.
window.ran = [];
window.gtagCalls = [];
window.dataLayer = window.dataLayer || [];
window.gtag = function () {
  window.gtagCalls.push(JSON.parse(JSON.stringify(Array.from(arguments))));
};
