/* /privacy: the preference center as the visitor of this origin, or as the learner whose token
   the platform passed in the fragment (#token=...), which never reaches a server in a URL. */
(() => {
  "use strict";
  const KEY = "consentry_token";
  const fragment = new URLSearchParams(location.hash.slice(1));
  let token = fragment.get("token");
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  // Kept for this tab only, so that a reload stays signed in.
  if (token) sessionStorage.setItem(KEY, token);
  else token = sessionStorage.getItem(KEY);

  // The token's claims, unchecked: the service checks the signature on every call.
  function claimsOf(jwt) {
    try {
      const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
    } catch {
      return {};
    }
  }

  // The subject is the token's `sub`.
  function subjectOf(jwt) {
    const claims = claimsOf(jwt);
    return typeof claims.sub === "string" ? claims.sub : null;
  }

  const subjectId = token ? subjectOf(token) : null;
  if (token && !subjectId) sessionStorage.removeItem(KEY);
  const options = { baseUrl: new URL(".", location.href).href, banner: false };
  if (subjectId) Object.assign(options, { token, subjectId });
  window.Consentry.load(options);
  // Who is signed in, by the name the platform's token gives, and the way back to the platform.
  const claims = subjectId ? claimsOf(token) : {};
  const account = [claims.name, claims.preferred_username, claims.email, subjectId].find((v) => typeof v === "string" && v);
  const platform = document.querySelector('meta[name="consentry-platform"]');
  window.Consentry.openPreferences({
    container: document.getElementById("consentry-privacy"),
    account, platform: platform && platform.content,
  });
})();
