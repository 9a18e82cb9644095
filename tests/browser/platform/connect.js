// A platform page that asks the signed-in learner before it connects their cloud drive.
const query = new URLSearchParams(location.search);
const script = document.querySelector('script[src$="sdk/consent.js"]');
window.consentReady = window.Consentry.load({
  baseUrl: script.src.replace(/sdk\/consent\.js$/, ""),
  token: query.get("token"),
  subjectId: query.get("subject"),
  language: query.get("language") || undefined,
  banner: false,
});
window.answers = [];
document.getElementById("connect").addEventListener("click", async () => {
  const answer = await window.Consentry.requestConnection("cloud-drive", ["files.write"]);
  window.answers.push(answer);
  document.getElementById("answer").textContent = answer.decision || "none";
});
