/* Consentry consent.js: a learner's consent from the service, before any optional script runs.
   Consentry.load({baseUrl, subjectId, token, region, language}), Consentry.allowed(category),
   Consentry.onChange(callback), Consentry.openPreferences(),
   Consentry.requestConnection(integrationId, scopes). No build step, no dependencies. */
(() => {
  "use strict";
  if (window.Consentry) return;

  const ID_COOKIE = "consentry_id";
  const LANG_COOKIE = "consentry_lang";
  const COOKIE_AGE = 34214400; // 13 months, the longest a consent cookie should live
  const ANON = /^anon:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  const LANGS = ["en", "de"];
  const TRANSLATED = "2026-11-01"; // the policy edition whose category texts T.de.cats translates
  // Consent Mode v2 before the service answers, and for good when it cannot be reached.
  const DENIED = {
    ad_storage: "denied", ad_user_data: "denied", ad_personalization: "denied",
    analytics_storage: "denied", functionality_storage: "denied",
    personalization_storage: "denied", security_storage: "granted",
  };

  const T = {
    en: {
      bannerTitle: "Your privacy choices",
      bannerText: "We use what is strictly necessary to sign you in and save your work. With your permission we would also measure how the platform is used, remember your settings and suggest courses for you. You can change your mind at any time in the privacy settings.",
      accept: "Accept all", reject: "Reject all", customize: "Customize",
      other: "Deutsch", otherLang: "de",
      title: "Privacy settings",
      intro: "Choose what the platform may do beyond what it needs to work. Every change takes effect at once and is recorded in your consent history.",
      gpc: "Your browser sends a Global Privacy Control signal, so performance and personalisation stay off until you switch them on yourself.",
      stale: "Our policy has changed since your last choice. Please look at your choices again.",
      unsaved: "You have not made a choice yet: the switches show the defaults.",
      save: "Save my choices", close: "Close",
      on: "On", off: "Off", always: "Always on",
      ifOff: "If you switch it off:", whyOn: "Why it stays on:",
      sharedWith: "Shared with:", nobody: "no outside provider",
      receiving: "Who receives your data now",
      receivingNone: "No outside provider receives your data.",
      countries: "Processed in:",
      history: "Your consent history", historyNone: "No choice recorded yet.",
      historyMore: "Only the latest 20 changes are shown.",
      yourData: "Your data",
      dataText: "Download a copy of what the consent service keeps about you, or have your data deleted across the platform.",
      exportScope: "The download holds what the consent service itself keeps: your current choices and every change to them, the activity recorded under your consent, your answers about connected tools, the outside providers that may receive your data, and your deletion requests. Your courses, progress and submissions are kept by the platform's other services; ask the platform's privacy team for a copy of those.",
      dataAnon: "Sign in to the platform and open the privacy settings from your account to download or delete your data.",
      download: "Download my data", erase: "Delete my data",
      eraseTitle: "Delete all your data?",
      eraseOwn: "The consent service deletes at once your current choices, the activity recorded under them and your answers about connected tools. It keeps a record of your past choices for {kept} days as legal proof, without your name, address or browser, then deletes that too.",
      eraseOthers: "Every other service of the platform that keeps data about you (such as course progress or recommendations) is told to delete it as well and confirms when it has. Everything is deleted within {due} days.",
      eraseGrace: "Nothing is deleted during the first {grace} days: until then you can cancel here and keep your account.",
      eraseNow: "Deletion starts at once and cannot be undone.",
      eraseConfirm: "Yes, delete my data", cancel: "Cancel",
      erased: "Your request was received: your data is being deleted. The consent service deletes its part within minutes; the platform's other services confirm theirs within {due} days. You can follow it on this page.",
      erasePending: "Your data will be deleted from {date}. Until then you can cancel and keep your account.",
      eraseCancel: "Cancel the deletion",
      eraseCancelled: "The deletion was cancelled. Your account and your data are kept.",
      gone: "The data of this account has been deleted, so there is nothing left to show.",
      erasedTitle: "What was deleted",
      erasedOwn: "The consent service deleted its part on {date}:",
      erasedKept: "Your past choices are kept without your name as legal proof until {date}, then deleted.",
      erasedSystems: "The platform's other services:",
      erasedDone: "Finished on {date}: every service has deleted your data.",
      erasedDue: "Everything is deleted by {date}.",
      systemStatus: { confirmed: "deleted, confirmed on {date}", notified: "told to delete", pending: "deleting, not confirmed yet", failed: "not confirmed yet; the privacy team follows it up" },
      kinds: { events: "Activity records", consent_states: "Current choices", consent_records: "Entries of your choice history", integrations: "Answers about connected tools" },
      saved: "Saved.", savedAll: "Your choices were saved.",
      failed: "That did not work. Please try again.",
      expired: "Your sign-in has expired. Open the privacy settings again from the platform.",
      down: "Your privacy settings cannot be loaded right now, so only what is strictly necessary is used. Please try again later.",
      loading: "Loading…", downloaded: "Your download has started.",
      sources: { banner: "banner", preference_center: "privacy settings", api: "the platform", import: "import", notice: "notice of the defaults" },
      methods: { accept_all: "accepted all", reject_all: "rejected all", custom: "own choice" },
      via: "via", defaults: "defaults",
      noticeText: "We use what is strictly necessary to sign you in and save your work. Unless you opt out, we also measure how the platform is used and suggest courses from your activity; we remember your settings either way. You can change this at any time in the privacy settings.",
      optOut: "Do not sell or share my personal information",
      policyLink: "Data tracking policy", version: "version", providersLink: "Service providers",
      signedIn: "Signed in as", back: "Back to the platform",
      receives: "Receives:", safeguard: "safeguarded by", optOutAt: "Opt out with this provider",
      mechanisms: { adequacy: "an adequacy decision", SCC: "Standard Contractual Clauses", BCR: "Binding Corporate Rules", DPF: "the EU-US Data Privacy Framework", consent: "your explicit consent" },
    },
    de: {
      bannerTitle: "Ihre Datenschutz-Einstellungen",
      bannerText: "Wir verwenden, was zum Anmelden und Speichern Ihrer Arbeit unbedingt nötig ist. Mit Ihrer Erlaubnis würden wir außerdem messen, wie die Plattform genutzt wird, Ihre Einstellungen speichern und Ihnen Kurse vorschlagen. Sie können Ihre Wahl jederzeit in den Datenschutz-Einstellungen ändern.",
      accept: "Alle akzeptieren", reject: "Alle ablehnen", customize: "Anpassen",
      other: "English", otherLang: "en",
      title: "Datenschutz-Einstellungen",
      intro: "Wählen Sie, was die Plattform über das Nötige hinaus tun darf. Jede Änderung gilt sofort und wird in Ihrem Einwilligungsverlauf festgehalten.",
      gpc: "Ihr Browser sendet das Signal „Global Privacy Control“. Leistung und Personalisierung bleiben daher aus, bis Sie sie selbst einschalten.",
      stale: "Unsere Richtlinie hat sich seit Ihrer letzten Wahl geändert. Bitte prüfen Sie Ihre Auswahl erneut.",
      unsaved: "Sie haben noch nicht gewählt: Die Schalter zeigen die Voreinstellungen.",
      save: "Meine Auswahl speichern", close: "Schließen",
      on: "An", off: "Aus", always: "Immer an",
      ifOff: "Wenn Sie es ausschalten:", whyOn: "Warum es an bleibt:",
      sharedWith: "Weitergegeben an:", nobody: "keinen externen Anbieter",
      receiving: "Wer Ihre Daten jetzt erhält",
      receivingNone: "Kein externer Anbieter erhält Ihre Daten.",
      countries: "Verarbeitet in:",
      history: "Ihr Einwilligungsverlauf", historyNone: "Noch keine Wahl gespeichert.",
      historyMore: "Es werden nur die letzten 20 Änderungen gezeigt.",
      yourData: "Ihre Daten",
      dataText: "Laden Sie eine Kopie dessen herunter, was der Einwilligungsdienst über Sie speichert, oder lassen Sie Ihre Daten auf der ganzen Plattform löschen.",
      exportScope: "Der Download enthält, was der Einwilligungsdienst selbst speichert: Ihre aktuelle Auswahl und jede Änderung daran, die mit Ihrer Einwilligung erfassten Aktivitäten, Ihre Antworten zu verbundenen Werkzeugen, die externen Anbieter, die Ihre Daten erhalten dürfen, und Ihre Löschanträge. Ihre Kurse, Fortschritte und Abgaben speichern die anderen Dienste der Plattform; eine Kopie davon erhalten Sie beim Datenschutzteam der Plattform.",
      dataAnon: "Melden Sie sich auf der Plattform an und öffnen Sie die Datenschutz-Einstellungen in Ihrem Konto, um Ihre Daten herunterzuladen oder zu löschen.",
      download: "Meine Daten herunterladen", erase: "Meine Daten löschen",
      eraseTitle: "Alle Ihre Daten löschen?",
      eraseOwn: "Der Einwilligungsdienst löscht sofort Ihre aktuelle Auswahl, die darunter erfassten Aktivitäten und Ihre Antworten zu verbundenen Werkzeugen. Einen Nachweis Ihrer früheren Auswahl bewahrt er {kept} Tage als rechtlichen Beleg auf, ohne Ihren Namen, Ihre Adresse oder Ihren Browser, und löscht dann auch ihn.",
      eraseOthers: "Jeder andere Dienst der Plattform, der Daten über Sie speichert (etwa Kursfortschritt oder Empfehlungen), wird ebenfalls zum Löschen aufgefordert und bestätigt es. Alles ist innerhalb von {due} Tagen gelöscht.",
      eraseGrace: "In den ersten {grace} Tagen wird nichts gelöscht: Bis dahin können Sie hier abbrechen und Ihr Konto behalten.",
      eraseNow: "Das Löschen beginnt sofort und lässt sich nicht rückgängig machen.",
      eraseConfirm: "Ja, meine Daten löschen", cancel: "Abbrechen",
      erased: "Ihr Antrag ist eingegangen: Ihre Daten werden gelöscht. Der Einwilligungsdienst löscht seinen Teil innerhalb von Minuten; die anderen Dienste der Plattform bestätigen ihren innerhalb von {due} Tagen. Sie können es auf dieser Seite verfolgen.",
      erasePending: "Ihre Daten werden ab {date} gelöscht. Bis dahin können Sie abbrechen und Ihr Konto behalten.",
      eraseCancel: "Löschen abbrechen",
      eraseCancelled: "Das Löschen wurde abgebrochen. Ihr Konto und Ihre Daten bleiben erhalten.",
      gone: "Die Daten dieses Kontos wurden gelöscht; es gibt nichts mehr anzuzeigen.",
      erasedTitle: "Was gelöscht wurde",
      erasedOwn: "Der Einwilligungsdienst hat seinen Teil am {date} gelöscht:",
      erasedKept: "Ihre frühere Auswahl wird ohne Ihren Namen bis {date} als rechtlicher Beleg aufbewahrt und dann gelöscht.",
      erasedSystems: "Die anderen Dienste der Plattform:",
      erasedDone: "Abgeschlossen am {date}: Jeder Dienst hat Ihre Daten gelöscht.",
      erasedDue: "Alles ist bis {date} gelöscht.",
      systemStatus: { confirmed: "gelöscht, bestätigt am {date}", notified: "zum Löschen aufgefordert", pending: "löscht, noch nicht bestätigt", failed: "noch nicht bestätigt; das Datenschutzteam kümmert sich darum" },
      kinds: { events: "Aktivitätseinträge", consent_states: "Aktuelle Auswahl", consent_records: "Einträge Ihres Einwilligungsverlaufs", integrations: "Antworten zu verbundenen Werkzeugen" },
      saved: "Gespeichert.", savedAll: "Ihre Auswahl wurde gespeichert.",
      failed: "Das hat nicht geklappt. Bitte versuchen Sie es erneut.",
      expired: "Ihre Anmeldung ist abgelaufen. Öffnen Sie die Datenschutz-Einstellungen erneut über die Plattform.",
      down: "Ihre Datenschutz-Einstellungen können gerade nicht geladen werden; es wird nur das unbedingt Nötige verwendet. Bitte versuchen Sie es später erneut.",
      loading: "Wird geladen …", downloaded: "Ihr Download hat begonnen.",
      sources: { banner: "Banner", preference_center: "Datenschutz-Einstellungen", api: "die Plattform", import: "Import", notice: "Hinweis auf die Voreinstellungen" },
      methods: { accept_all: "alle akzeptiert", reject_all: "alle abgelehnt", custom: "eigene Auswahl" },
      via: "über", defaults: "Voreinstellung",
      noticeText: "Wir verwenden, was zum Anmelden und Speichern Ihrer Arbeit unbedingt nötig ist. Wenn Sie nicht widersprechen, messen wir außerdem, wie die Plattform genutzt wird, und schlagen Ihnen Kurse nach Ihren Aktivitäten vor; Ihre Einstellungen speichern wir in jedem Fall. Sie können das jederzeit in den Datenschutz-Einstellungen ändern.",
      optOut: "Meine personenbezogenen Daten nicht verkaufen oder weitergeben",
      policyLink: "Richtlinie zur Datenerfassung", version: "Fassung", providersLink: "Dienstleister",
      signedIn: "Angemeldet als", back: "Zurück zur Plattform",
      receives: "Erhält:", safeguard: "abgesichert durch", optOutAt: "Beim Anbieter widersprechen",
      mechanisms: { adequacy: "einen Angemessenheitsbeschluss", SCC: "Standardvertragsklauseln", BCR: "verbindliche interne Datenschutzvorschriften", DPF: "das EU-US Data Privacy Framework", consent: "Ihre ausdrückliche Einwilligung" },
      // The policy's own texts are English; these say the same for the packaged categories.
      cats: {
        necessary: ["Unbedingt nötig", "Anmelden, Ihre Sitzung halten, Ihre Stelle in einer Lektion merken und eingereichte Arbeiten speichern.", "Lässt sich nicht ausschalten: Ohne sie könnten Sie sich nicht anmelden, Ihre Kurse nicht öffnen und keine Aufgaben abgeben."],
        performance: ["Leistung", "Misst, wie die Plattform genutzt wird, etwa welche Kurse beliebt sind, wie lange Themen dauern und wo Seiten langsam laden, damit wir wissen, was zu verbessern ist.", "Ihr Lernen ändert sich nicht; wir erfahren nur weniger darüber, was funktioniert und was repariert werden muss."],
        functional: ["Funktional", "Merkt sich Ihre Einstellungen: Sprache, Barrierefreiheit, Design und wo Sie ein Video angehalten haben.", "Ihre Einstellungen werden nicht gespeichert; Sprache, Barrierefreiheit oder Design müssen Sie womöglich bei jedem Besuch neu wählen, und Videos laufen nicht dort weiter, wo Sie aufgehört haben."],
        customization: ["Personalisierung", "Schlägt Kurse und Lernmaterial nach Ihren bisherigen Aktivitäten vor und kann die Schwierigkeit an Ihren Fortschritt anpassen.", "Sie erhalten keine persönlichen Empfehlungen oder zugeschnittenen Materialien; Ihr Lernweg ist derselbe wie bei allen anderen."],
      },
    },
  };

  // Texts of the connections to outside tools (the /privacy section and requestConnection).
  const TC = {
    en: {
      title: "Connections", intro: "Outside tools and your school's systems that can receive your data. Nothing is shared with a tool you have not approved; a connection your school set up can be declined.",
      none: "There are no connections to show.", ask: "Connect {name}?",
      why: "Why:", shares: "What it shares:", receiver: "Who receives it:", allows: "What it may do:",
      approve: "Approve", decline: "Decline", revoke: "Revoke", status: "Status:",
      statuses: { none: "not connected", pending: "waiting for your answer", informed: "connected by your school until you decline", approved: "approved", declined: "declined", revoked: "revoked" },
      done: { approved: "{name}: approved.", declined: "{name}: declined.", revoked: "{name}: revoked." },
    },
    de: {
      title: "Verbindungen", intro: "Externe Werkzeuge und Systeme Ihrer Schule, die Ihre Daten erhalten können. Mit einem Werkzeug, das Sie nicht erlaubt haben, wird nichts geteilt; eine von Ihrer Schule eingerichtete Verbindung können Sie ablehnen.",
      none: "Es gibt keine Verbindungen.", ask: "{name} verbinden?",
      why: "Wozu:", shares: "Was geteilt wird:", receiver: "Wer es erhält:", allows: "Was es darf:",
      approve: "Erlauben", decline: "Ablehnen", revoke: "Widerrufen", status: "Status:",
      statuses: { none: "nicht verbunden", pending: "wartet auf Ihre Antwort", informed: "von Ihrer Schule verbunden, bis Sie ablehnen", approved: "erlaubt", declined: "abgelehnt", revoked: "widerrufen" },
      done: { approved: "{name}: erlaubt.", declined: "{name}: abgelehnt.", revoked: "{name}: widerrufen." },
    },
  };

  const script = document.currentScript;
  const S = {
    base: script && script.src ? new URL("..", script.src).href : location.origin + "/",
    id: null, token: null, region: null, option: null,
    state: null, ready: null, policy: null, listeners: [], gtagDefault: false,
    host: null, root: null, banner: null, prefs: null,
  };

  // ---- cookies, ids and language -------------------------------------------------------------

  function cookie(name) {
    const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : null;
  }

  function setCookie(name, value) {
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `${name}=${encodeURIComponent(value)}; Max-Age=${COOKIE_AGE}; Path=/; SameSite=Lax${secure}`;
  }

  function uuid4() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
  }

  function anonymousId() {
    let id = cookie(ID_COOKIE);
    if (!id || !ANON.test(id)) id = "anon:" + uuid4();
    setCookie(ID_COOKIE, id); // renewed on each visit
    return id;
  }

  function pickLang(value) {
    const short = String(value || "").toLowerCase().split("-")[0];
    return LANGS.includes(short) ? short : null;
  }

  // An explicit choice in the banner or settings wins, then the platform's, then the browser's.
  function language() {
    return pickLang(cookie(LANG_COOKIE)) || pickLang(S.option) ||
      (navigator.languages || [navigator.language]).map(pickLang).find(Boolean) || "en";
  }

  function t(key) {
    const lang = T[language()];
    return key in lang ? lang[key] : T.en[key];
  }

  // ---- the service ---------------------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (S.token) headers.Authorization = "Bearer " + S.token;
    if (body) headers["Content-Type"] = "application/json";
    const response = await fetch(S.base + path, {
      method, headers, body: body ? JSON.stringify(body) : undefined,
      credentials: "omit", cache: "no-store",
      signal: AbortSignal.timeout ? AbortSignal.timeout(10000) : undefined,
    });
    if (!response.ok) {
      const error = new Error(`${method} ${path}: ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return response;
  }

  const json = async (method, path, body) => (await api(method, path, body)).json();
  const subjectPath = (rest) => `v1/subjects/${encodeURIComponent(S.id)}/${rest}`;
  const regionQuery = () => (S.region ? "?region=" + encodeURIComponent(S.region) : "");

  function policy() {
    if (!S.policy) {
      S.policy = json("GET", "v1/policy");
      S.policy.catch(() => { S.policy = null; });
    }
    return S.policy;
  }

  // ---- state, scripts and Consent Mode -------------------------------------------------------

  function allowed(category) {
    if (category === "necessary") return true;
    const found = S.state && S.state.categories[category];
    return Boolean(found && found.granted);
  }

  function gtag(...args) {
    if (typeof window.gtag !== "function") return false;
    window.gtag(...args);
    return true;
  }

  function consentMode() {
    if (!S.gtagDefault) S.gtagDefault = gtag("consent", "default", { ...DENIED, wait_for_update: 500 });
    if (S.gtagDefault && S.state) gtag("consent", "update", { ...S.state.consent_mode });
  }

  // Scripts written as <script type="text/plain" data-consent="performance"> run once allowed.
  // Without a known consent only `necessary` passes, so this is safe to run at any time.
  function runScripts() {
    for (const old of document.querySelectorAll('script[type="text/plain"][data-consent]')) {
      if (old.hasAttribute("data-consentry-ran")) continue;
      const categories = old.getAttribute("data-consent").split(/[\s,]+/).filter(Boolean);
      if (!categories.length || !categories.every(allowed)) continue;
      old.setAttribute("data-consentry-ran", "");
      const fresh = document.createElement("script");
      for (const { name, value } of old.attributes) {
        if (!["type", "data-consent", "data-consentry-ran", "data-type"].includes(name)) {
          fresh.setAttribute(name, value);
        }
      }
      if (old.hasAttribute("data-type")) fresh.type = old.getAttribute("data-type");
      if (old.nonce) fresh.nonce = old.nonce;
      if (old.src) fresh.async = old.hasAttribute("async");
      else fresh.text = old.text;
      old.after(fresh);
    }
  }

  function setState(state) {
    S.state = state;
    consentMode();
    runScripts();
    for (const listener of S.listeners) notify(listener);
    if (S.banner && !needsChoice()) closeBanner();
    if (S.prefs) S.prefs.update();
  }

  function notify(listener) {
    try {
      listener(snapshot());
    } catch (error) {
      console.error("Consentry: an onChange callback failed", error);
    }
  }

  function snapshot() {
    return S.state ? JSON.parse(JSON.stringify(S.state)) : null;
  }

  // As the service's has_chosen: a choice leaves `user` or `admin`; defaults and notices never.
  const chosen = () => Object.values(S.state.categories).some((c) => c.source === "user" || c.source === "admin");
  const needsChoice = () => Boolean(S.state && (!chosen() || S.state.stale));

  function load(options = {}) {
    if (S.ready) return S.ready;
    if (options.baseUrl) S.base = String(options.baseUrl).replace(/\/*$/, "/");
    S.token = options.token || null;
    S.region = options.region || null;
    S.option = options.language || null;
    S.id = options.subjectId || anonymousId();
    consentMode();
    S.ready = (async () => {
      await linkAfterSignIn();
      try {
        S.state = await json("GET", subjectPath("consent") + regionQuery());
      } catch (error) {
        // Fail closed: nothing optional runs, and the page goes on without us.
        console.warn("Consentry: consent could not be read; only necessary features run.", error);
        S.failed = error;
        runScripts();
        return null;
      }
      // Opt-out region, no choice: the defaults about to apply are recorded first (a notice), so
      // that what their scripts send is kept. A default without a time has no record yet.
      const optional = Object.values(S.state.categories).filter((c) => !c.required);
      if (S.state.regime === "opt_out" && !chosen() && optional.some((c) => !c.updated_at)) {
        try {
          S.state = await notice();
        } catch (error) {
          // Fail closed: nothing optional runs that the service would not count.
          console.warn("Consentry: the defaults could not be recorded; only necessary features run.", error);
          for (const c of optional) c.granted = false;
          S.state.consent_mode = { ...DENIED };
        }
      }
      setState(S.state);
      if (needsChoice() && options.banner !== false) {
        // Readers of the banner text need the policy to save their choice.
        policy().catch(() => {});
        await domReady();
        await showBanner();
      }
      return snapshot();
    })();
    return S.ready;
  }

  // ---- sign-in: the visitor's banner choice follows into the account -------------------------
  // The browser's anonymous id is linked to the learner once (the service decides whether its
  // choice carries over), then replaced, so whoever signs in next on a shared computer inherits
  // nothing. FRESH_COOKIE names the id started here until an anonymous page has used it: signed-in
  // pages do not link an id that nobody could have answered with.
  const FRESH_COOKIE = "consentry_fresh";

  async function linkAfterSignIn() {
    const visitor = cookie(ID_COOKIE);
    if (!S.token) {
      if (visitor && visitor === cookie(FRESH_COOKIE)) setCookie(FRESH_COOKIE, "");
      return;
    }
    if (!visitor || !ANON.test(visitor) || visitor === cookie(FRESH_COOKIE)) return;
    try {
      await api("POST", subjectPath("consent/link"), { anonymous_id: visitor });
    } catch (error) {
      // Kept for the next page when the answer may change (offline, busy, expired sign-in);
      // an id the service refused (409: linked already) is done with.
      if (!error.status || error.status >= 500 || [401, 429].includes(error.status)) return;
    }
    const fresh = "anon:" + uuid4();
    setCookie(ID_COOKIE, fresh);
    setCookie(FRESH_COOKIE, fresh);
  }

  async function save(categories, source, method) {
    const current = await policy();
    const choice = {};
    for (const c of current.categories) if (!c.required) choice[c.id] = Boolean(categories[c.id]);
    const body = { categories: choice, policy_version: current.version, source, method, language: language() };
    if (S.region) body.region = S.region;
    setState(await json("PUT", subjectPath("consent"), body));
  }

  function notice() {
    const categories = {};
    for (const [id, c] of Object.entries(S.state.categories)) if (!c.required) categories[id] = c.granted;
    const body = { categories, policy_version: S.state.policy_version, source: "notice", language: language() };
    if (S.region) body.region = S.region;
    return json("PUT", subjectPath("consent"), body);
  }

  function all(granted) {
    return Object.fromEntries(Object.keys(S.state.categories).map((c) => [c, granted]));
  }

  // ---- rendering -----------------------------------------------------------------------------

  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "class") el.className = value;
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (const kid of kids.flat(Infinity)) if (kid != null && kid !== false) el.append(kid);
    return el;
  }

  const domReady = () => new Promise((resolve) => {
    if (document.body) resolve();
    else document.addEventListener("DOMContentLoaded", () => resolve(), { once: true });
  });

  // One shadow root keeps the platform's styles out of ours and ours out of the platform's.
  async function root() {
    if (!S.root) {
      S.host = h("div", { id: "consentry", "data-consentry": "" });
      document.body.prepend(S.host);
      const shadow = S.host.attachShadow({ mode: "open" });
      const sheet = h("link", { rel: "stylesheet", href: S.base + "sdk/consent.css" });
      S.root = new Promise((resolve) => {
        sheet.addEventListener("load", () => resolve(shadow));
        sheet.addEventListener("error", () => resolve(shadow));
      });
      shadow.append(sheet, h("div", { class: "sr", role: "status", "aria-live": "polite" }));
    }
    return S.root;
  }

  async function announce(text) {
    const live = (await root()).querySelector(".sr");
    live.textContent = "";
    setTimeout(() => { live.textContent = text; }, 50);
  }

  function langButton(rerender) {
    return h("button", {
      type: "button", class: "link", lang: t("otherLang"), "data-lang": "",
      onclick: () => { setCookie(LANG_COOKIE, t("otherLang")); rerender(); },
    }, t("other"));
  }

  async function showBanner() {
    const shadow = await root();
    const doc = await policy().catch(() => null);
    if (S.banner || !needsChoice()) return;
    const choose = (method) => async (event) => {
      const buttons = S.banner.querySelectorAll("button");
      buttons.forEach((b) => { b.disabled = true; });
      try {
        if (method === "opt_out") {
          // What Global Privacy Control turns off: sale, sharing and profiling; settings stay.
          const off = (await policy()).gpc_categories;
          await save(Object.fromEntries(Object.entries(S.state.categories).map(([c, v]) => [c, v.granted && !off.includes(c)])), "banner", "custom");
        } else await save(all(method === "accept_all"), "banner", method);
        announce(t("savedAll"));
      } catch (error) {
        buttons.forEach((b) => { b.disabled = false; });
        S.banner.querySelector(".error").textContent = t("failed");
        event.target.focus();
      }
    };
    const gpc = Object.values(S.state.categories).some((c) => c.source === "gpc");
    const optOut = S.state.regime === "opt_out";
    S.banner = h("section", { class: "banner", lang: language(), "aria-labelledby": "cs-banner-title" },
      h("div", { class: "text" },
        h("div", { class: "row top" }, h("h2", { id: "cs-banner-title" }, t("bannerTitle")),
          langButton(() => { closeBanner(); showBanner(); })),
        h("p", null, t(optOut ? "noticeText" : "bannerText")),
        S.state.stale ? h("p", null, t("stale")) : null,
        gpc ? h("p", null, t("gpc")) : null,
        h("p", { class: "error", role: "alert" })),
      h("div", { class: "actions" }, h("div", { class: "pair" },
        h("button", { type: "button", class: "btn primary", "data-action": "accept_all", onclick: choose("accept_all") }, t("accept")),
        optOut ? h("button", { type: "button", class: "btn primary", "data-action": "opt_out", onclick: choose("opt_out") }, t("optOut")) :
          h("button", { type: "button", class: "btn primary", "data-action": "reject_all", onclick: choose("reject_all") }, t("reject"))),
        h("button", { type: "button", class: "btn", "data-action": "customize", onclick: () => openPreferences() }, t("customize"))),
      h("div", { class: "links" }, policyLink(doc),
        h("button", { type: "button", class: "link", "data-action": "providers", onclick: () => openPreferences({ focus: "providers" }) }, t("providersLink"))));
    shadow.append(S.banner);
  }

  // The published policy, linked where its address is known, with the version in force.
  function policyLink(doc) {
    if (!doc || !doc.url) return null;
    return h("a", { href: doc.url, "data-policy": "" }, `${t("policyLink")} (${t("version")} ${doc.version})`);
  }

  function closeBanner() {
    if (S.banner) S.banner.remove();
    S.banner = null;
  }

  // The policy's texts, or their translation when it was made from this very edition.
  function categoryText(category, version) {
    const own = version === TRANSLATED && T[language()].cats && T[language()].cats[category.id];
    return own ? { name: own[0], description: own[1], off: own[2] } :
      { name: category.name, description: category.description, off: category.if_disabled };
  }

  function dateText(value) {
    return new Date(value).toLocaleString(language(), { dateStyle: "medium", timeStyle: "short" });
  }

  // The preference center: in a modal dialog on the platform, or inside `container` (/privacy).
  async function openPreferences(options = {}) {
    if (S.prefs) {
      S.prefs.focus(options.focus);
      return;
    }
    // Taken at once, so that a second call while this one loads opens nothing more.
    S.prefs = { update() {}, focus() {} };
    let opener = document.activeElement;
    while (opener && opener.shadowRoot && opener.shadowRoot.activeElement) {
      opener = opener.shadowRoot.activeElement;
    }
    await domReady();
    const shadow = await root();
    const modal = !options.container;
    let frame;
    if (modal) {
      frame = h("dialog", { class: "modal", "aria-labelledby": "cs-prefs-title" });
      frame.addEventListener("close", () => {
        frame.remove();
        S.prefs = null;
        if (opener && opener.isConnected && opener.focus) opener.focus();
      });
      shadow.append(frame);
      frame.showModal();
    } else {
      const inner = options.container.shadowRoot || options.container.attachShadow({ mode: "open" });
      inner.append(shadow.querySelector("link").cloneNode());
      frame = h("div", { class: "page" });
      inner.append(frame);
    }
    const body = h("div", { class: "prefs" }, h("p", { role: "status" }, t("loading")));
    frame.append(body);
    await (S.ready || load());
    const [policyDoc, providers] = await Promise.all([
      policy().catch(() => null),
      json("GET", "v1/providers?limit=1000").then((r) => r.items).catch(() => []),
    ]);
    if (!frame.isConnected) return; // closed while it loaded
    const view = { frame, body, modal, policy: policyDoc, providers, level: modal ? 2 : 1, options };
    S.prefs = {
      update: () => updatePrefs(view),
      focus: (to) => {
        // The banner's provider link lands on the providers; anything else on the first switch.
        const target = to === "providers" && frame.querySelector("#cs-providers");
        if (target) target.scrollIntoView({ block: "start" });
        (target || frame.querySelector("input:not([disabled])") || frame.querySelector("button")).focus();
      },
    };
    renderPrefs(view);
    if (modal || options.focus) S.prefs.focus(options.focus);
  }

  // On a phone the top one is a mere cross, so that the title keeps its line's width.
  function closeButton(view) {
    return h("button", { type: "button", class: "btn", "data-action": "close", "aria-label": t("close"), onclick: () => view.frame.close() },
      h("span", { class: "label" }, t("close")), h("span", { class: "x", "aria-hidden": "true" }, "\u2715"));
  }

  // A provider in the page's language, with what it receives, where, under which safeguard.
  function providerItem(p) {
    const own = (p.translations || {})[language()] || {};
    const labels = own.data_shared || {};
    const regions = new Intl.DisplayNames([language()], { type: "region" });
    const mechanism = p.transfer_mechanism && (t("mechanisms")[p.transfer_mechanism] || p.transfer_mechanism);
    return h("li", null, h("details", null,
      h("summary", null, own.name || p.name),
      h("p", null, own.purpose || p.purpose),
      h("p", null, h("strong", null, t("receives")), " ", p.data_shared.map((d) => labels[d] || d.replace(/_/g, " ")).join(", ")),
      h("p", null, `${t("countries")} ${p.countries.map((c) => regions.of(c)).join(", ")}`, mechanism ? `, ${t("safeguard")} ${mechanism}` : ""),
      p.opt_out_url ? h("p", null, h("a", { href: p.opt_out_url, target: "_blank", rel: "noopener noreferrer" }, t("optOutAt"))) : null));
  }

  function heading(view, depth, props, text) {
    return h("h" + (view.level + depth), props, text);
  }

  function renderPrefs(view) {
    const { body, options } = view;
    body.replaceChildren();
    body.setAttribute("lang", language());
    if (!view.modal) {
      document.title = t("title");
      document.documentElement.lang = language();
    }
    const top = h("div", { class: "row top" }, heading(view, 0, { id: "cs-prefs-title" }, t("title")),
      h("span", { class: "tools" }, langButton(() => {
        renderPrefs(view);
        view.body.querySelector("[data-lang]").focus();
      }), view.modal ? closeButton(view) : null));
    // On /privacy: who is signed in, and the way back to the platform.
    if (options.account || options.platform) {
      body.append(h("div", { class: "row account" },
        options.account ? h("p", null, t("signedIn"), " ", h("strong", null, options.account)) : h("span"),
        options.platform ? h("a", { href: options.platform, "data-action": "back" }, t("back")) : null));
    }
    body.append(top);
    if (!S.state || !view.policy) {
      const status = S.failed && S.failed.status;
      body.append(h("p", { role: "alert", class: "notice" }, t(status === 401 ? "expired" : status === 410 ? "gone" : "down")));
      if (status === 410 && S.token) body.append(erasureReport(view));
      return;
    }
    view.status = h("p", { class: "status", role: "status", "aria-live": "polite" });
    view.notice = h("div");
    view.switches = {};
    const list = h("ul", { class: "cats" });
    for (const category of view.policy.categories) {
      const text = categoryText(category, view.policy.version);
      const id = "cs-cat-" + category.id;
      const input = h("input", {
        type: "checkbox", role: "switch", id, "data-category": category.id,
        "aria-describedby": `${id}-desc ${id}-off`, disabled: category.required,
        onchange: () => toggle(view, category.id, input),
      });
      const stateText = h("span", { class: "state", "aria-hidden": "true" });
      view.switches[category.id] = [input, stateText, category.required];
      const shared = view.providers.filter((p) => p.category === category.id);
      list.append(h("li", { class: "cat" },
        h("div", { class: "row" }, heading(view, 1, null, h("label", { for: id }, text.name)),
          h("span", { class: "switch" }, input, stateText)),
        h("p", { id: id + "-desc" }, text.description),
        h("p", { id: id + "-off" }, h("strong", null, t(category.required ? "whyOn" : "ifOff")), " ", text.off),
        h("div", { class: "muted" }, t("sharedWith"), " ", shared.length ? h("ul", { class: "list providers" }, shared.map(providerItem)) : t("nobody"))));
    }
    view.receiving = h("div");
    view.history = h("div");
    const actions = h("div", { class: "actions" }, h("div", { class: "pair" },
      h("button", { type: "button", class: "btn primary", "data-action": "accept_all", onclick: () => saveAll(view, true) }, t("accept")),
      h("button", { type: "button", class: "btn primary", "data-action": "reject_all", onclick: () => saveAll(view, false) }, t("reject"))),
      view.saveButton = h("button", { type: "button", class: "btn", "data-action": "save", onclick: () => saveSwitches(view) }, t("save")));
    const policyLine = h("p", { class: "muted" }, policyLink(view.policy) || `${t("policyLink")} (${t("version")} ${view.policy.version})`);
    body.append(h("p", null, t("intro")), policyLine, view.notice, list, actions, view.status,
      h("section", null, heading(view, 1, { id: "cs-providers", tabindex: "-1" }, t("receiving")), view.receiving),
      h("section", null, heading(view, 1, null, t("history")), view.history),
      dataSection(view),
      view.modal ? h("div", { class: "actions end" }, closeButton(view)) : "");
    if (S.token) body.lastChild.before(connectionsSection(view));
    updatePrefs(view);
  }

  function updatePrefs(view) {
    if (!view.switches || !S.state) return;
    for (const [id, [input, stateText, required]] of Object.entries(view.switches)) {
      input.checked = allowed(id);
      stateText.textContent = required ? t("always") : input.checked ? t("on") : t("off");
    }
    const gpc = Object.values(S.state.categories).some((c) => c.source === "gpc");
    view.notice.replaceChildren(
      ...[gpc && t("gpc"), S.state.stale ? t("stale") : !chosen() && t("unsaved")]
        .filter(Boolean).map((text) => h("p", { class: "notice" }, text)));
    view.saveButton.hidden = !needsChoice();
    refreshLists(view);
  }

  async function refreshLists(view) {
    const [receiving, history] = await Promise.all([
      json("GET", subjectPath("providers") + regionQuery()).then((r) => r.items).catch(() => null),
      json("GET", subjectPath("consent/history?limit=20")).catch(() => null),
    ]);
    if (receiving) {
      view.receiving.replaceChildren(receiving.length ? h("ul", { class: "list providers" }, receiving.map(providerItem)) :
        h("p", null, t("receivingNone")));
    }
    if (history) {
      const names = Object.fromEntries(view.policy.categories.map((c) => [c.id, categoryText(c, view.policy.version).name]));
      view.history.replaceChildren(...[history.items.length ? h("ol", { class: "list history" }, history.items.map((r) =>
        h("li", null,
          h("time", { datetime: r.recorded_at }, dateText(r.recorded_at)), " — ",
          `${t("via")} ${t("sources")[r.source] || r.source}`, r.method ? `, ${t("methods")[r.method] || r.method}` : "",
          h("br"),
          Object.entries(r.categories).filter(([c]) => c !== "necessary").map(([c, granted], i) => {
            const part = `${names[c] || c}: ${granted ? t("on") : t("off")}`;
            return [i ? " · " : "", r.changed.includes(c) ? h("strong", null, part) : part];
          })))) : h("p", null, t("historyNone")),
      history.next_cursor && h("p", { class: "muted" }, t("historyMore"))].filter(Boolean));
    }
  }

  async function run(view, work, message) {
    view.status.textContent = "";
    try {
      await work();
      view.status.textContent = message;
    } catch (error) {
      view.status.textContent = error.status === 401 ? t("expired") : t("failed");
      updatePrefs(view);
    }
  }

  function choices(view) {
    return Object.fromEntries(Object.entries(view.switches).map(([id, [input]]) => [id, input.checked]));
  }

  function toggle(view, category, input) {
    view.switches[category][1].textContent = input.checked ? t("on") : t("off");
    return run(view, () => save(choices(view), "preference_center", "custom"), t("saved"));
  }

  function saveAll(view, granted) {
    return run(view, () => save(all(granted), "preference_center", granted ? "accept_all" : "reject_all"), t("savedAll"));
  }

  function saveSwitches(view) {
    return run(view, () => save(choices(view), "preference_center", "custom"), t("savedAll"));
  }

  // ---- your data: the export and the erasure -------------------------------------------------

  // "{name}" in a text, filled in.
  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : ""));
  }

  function dayText(value) {
    return new Date(value).toLocaleDateString(language(), { dateStyle: "long" });
  }

  // The grace period and the deadlines, as the service is configured.
  function erasureFacts() {
    if (!S.erasureFacts) {
      S.erasureFacts = json("GET", "sdk/erasure.json").catch(() => ({ grace_days: 0, due_days: 30, kept_days: 90 }));
    }
    return S.erasureFacts;
  }

  // The learner's own standing request (not a cancelled one), if any.
  async function ownRequest() {
    const page = await json("GET", "v1/erasure-requests?limit=20");
    return page.items.find((r) => r.status !== "cancelled") || null;
  }

  function dataSection(view) {
    const section = h("section", null, heading(view, 1, null, t("yourData")));
    if (!S.token) {
      section.append(h("p", null, t("dataAnon")));
      return section;
    }
    const result = h("p", { role: "status", "aria-live": "polite" });
    const eraseButton = h("button", { type: "button", class: "btn danger", "data-action": "erase", onclick: (event) => confirmErase(view, result, event.target) }, t("erase"));
    const pending = h("div");
    section.append(h("p", null, t("dataText")), h("p", { class: "muted", "data-export-scope": "" }, t("exportScope")),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "btn", "data-action": "export", onclick: () => exportData(result) }, t("download")),
        eraseButton),
      pending, result);
    // A request waiting out the grace period is shown, with the way to cancel it.
    ownRequest().then((request) => {
      if (request && request.starts_at) showPending(view, pending, eraseButton, request);
    }).catch(() => {});
    return section;
  }

  function showPending(view, box, eraseButton, request) {
    eraseButton.hidden = true;
    const status = h("p", { role: "status", "aria-live": "polite" });
    const cancel = h("button", { type: "button", class: "btn", "data-action": "cancel-erasure", onclick: async () => {
      cancel.disabled = true;
      try {
        await json("DELETE", "v1/erasure-requests/" + encodeURIComponent(request.id));
        box.replaceChildren(h("p", { class: "notice", role: "status" }, t("eraseCancelled")));
        eraseButton.hidden = false;
      } catch (error) {
        cancel.disabled = false;
        status.textContent = error.status === 401 ? t("expired") : t("failed");
      }
    } }, t("eraseCancel"));
    box.replaceChildren(h("p", { class: "notice" }, fill(t("erasePending"), { date: dateText(request.starts_at) })),
      h("div", { class: "actions" }, cancel), status);
  }

  async function exportData(result) {
    result.textContent = "";
    try {
      const response = await api("GET", subjectPath("export"));
      const disposition = response.headers.get("Content-Disposition") || "";
      const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || "consentry-export.json";
      const url = URL.createObjectURL(await response.blob());
      const link = h("a", { href: url, download: name });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      result.textContent = t("downloaded");
    } catch (error) {
      result.textContent = error.status === 401 ? t("expired") : t("failed");
    }
  }

  async function confirmErase(view, result, opener) {
    const facts = await erasureFacts();
    const days = { kept: facts.kept_days, due: facts.due_days, grace: facts.grace_days };
    const dialog = h("dialog", { class: "modal confirm", role: "alertdialog", "aria-labelledby": "cs-erase-title", "aria-describedby": "cs-erase-text", lang: language() },
      h("h2", { id: "cs-erase-title" }, t("eraseTitle")),
      h("div", { id: "cs-erase-text" },
        h("p", null, fill(t("eraseOwn"), days)),
        h("p", null, fill(t("eraseOthers"), days)),
        h("p", null, facts.grace_days > 0 ? fill(t("eraseGrace"), days) : t("eraseNow"))),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "btn", autofocus: true, "data-action": "cancel", onclick: () => dialog.close() }, t("cancel")),
        h("button", { type: "button", class: "btn danger", "data-action": "confirm-erase", onclick: async () => {
          dialog.close();
          try {
            const request = await json("POST", "v1/erasure-requests", { subject_id: S.id, reason: "subject_request" });
            if (request.starts_at) {
              // Nothing happens before the grace period ends: the page stays, with a way back.
              const box = h("div");
              result.after(box);
              showPending(view, box, opener, request);
              return;
            }
            view.body.replaceChildren(view.body.firstChild, h("p", { class: "notice", role: "alert" }, fill(t("erased"), days)));
            S.state = null;
            for (const listener of S.listeners) notify(listener);
          } catch (error) {
            result.textContent = error.status === 401 ? t("expired") : t("failed");
          }
        } }, t("eraseConfirm"))));
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener.isConnected && !opener.hidden) opener.focus();
    });
    view.frame.append(dialog);
    dialog.showModal();
  }

  // ---- connections to outside tools ---------------------------------------------------------

  const tc = (key) => TC[language()][key];
  const named = (text, name) => text.replace("{name}", name);

  // The catalogue in the visitor's language, and the learner's connections, pending first.
  async function connections() {
    const [catalogue, own] = await Promise.all([
      json("GET", `v1/integrations?limit=1000&language=${language()}`),
      json("GET", subjectPath("integrations?limit=1000")),
    ]);
    const byId = Object.fromEntries(catalogue.items.map((i) => [i.id, i]));
    const rank = (c) => (c.status === "pending" ? 0 : 1);
    return own.items.filter((c) => byId[c.integration_id])
      .sort((a, b) => rank(a) - rank(b)).map((c) => ({ integration: byId[c.integration_id], connection: c }));
  }

  // What an integration shares, why, with whom and what it may do: the same in the page and the dialog.
  function connectionFacts(integration, scopes, providers, id) {
    const provider = providers.find((p) => p.id === integration.provider_id);
    const texts = Object.fromEntries(integration.scopes.map((s) => [s.id, s.description]));
    return [
      h("p", { id: id + "-why" }, h("strong", null, tc("why")), " ", integration.purpose),
      h("p", null, h("strong", null, tc("shares")), " ", integration.data_shared.join(", ")),
      h("p", null, h("strong", null, tc("receiver")), " ", provider ? provider.name : integration.provider_id),
      h("p", null, h("strong", null, tc("allows"))),
      h("ul", { class: "list" }, scopes.map((s) => h("li", null, texts[s] || s))),
    ];
  }

  // The scopes an approval gives: those asked for, or every declared one when nothing is asked.
  function offered(integration, connection) {
    return connection.scopes.length ? connection.scopes : integration.scopes.map((s) => s.id);
  }

  async function setConnection(integrationId, decision, scopes) {
    const path = subjectPath("integrations/" + encodeURIComponent(integrationId));
    return decision === "revoke" ? json("DELETE", path) : json("PUT", path, { decision, scopes });
  }

  function connectionsSection(view) {
    const list = h("div", null, h("p", { role: "status" }, t("loading")));
    const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
    const section = h("section", { "aria-labelledby": "cs-conn-title" },
      heading(view, 1, { id: "cs-conn-title" }, tc("title")), h("p", null, tc("intro")), list, status);
    const render = async (focusId) => {
      let found;
      try {
        found = await connections();
      } catch (error) {
        list.replaceChildren(h("p", { class: "notice" }, t(error.status === 401 ? "expired" : "failed")));
        return;
      }
      if (!found.length) {
        list.replaceChildren(h("p", null, tc("none")));
        return;
      }
      list.replaceChildren(h("ul", { class: "cats conns" }, found.map(({ integration, connection }) => {
        const id = "cs-conn-" + integration.id;
        const scopes = connection.status === "approved" ? connection.scopes : offered(integration, connection);
        const act = (decision) => async () => {
          status.textContent = "";
          try {
            const after = await setConnection(integration.id, decision, scopes);
            status.textContent = named(tc("done")[after.status], integration.name);
            await render(`${integration.id}:${decision}`);
            refreshLists(view); // who receives the data changes with the connection
          } catch (error) {
            status.textContent = error.status === 401 ? t("expired") : t("failed");
          }
        };
        const actions = connection.status === "approved" ? ["revoke"] :
          connection.status === "pending" || connection.status === "informed" ? ["approve", "decline"] : ["approve"];
        return h("li", { class: "cat conn", "data-integration": integration.id, "aria-labelledby": id },
          heading(view, 2, { id }, integration.name),
          h("p", null, h("strong", null, tc("status")), " ", tc("statuses")[connection.status]),
          connectionFacts(integration, scopes, view.providers, id),
          h("div", { class: "actions" }, actions.map((decision) => h("button", {
            type: "button", class: "btn", "data-action": decision, "aria-describedby": id,
            onclick: act(decision),
          }, tc(decision)))));
      })));
      // After a change the buttons are new: focus stays on the card that changed.
      const card = focusId && list.querySelector(`[data-integration="${focusId.split(":")[0]}"]`);
      if (card) card.querySelector("button").focus();
    };
    render();
    return section;
  }

  // The platform asks the learner on its own page: the same facts, Approve or Decline of equal
  // weight; resolves with {decision, status, scopes}, or {decision: null} when dismissed.
  async function requestConnection(integrationId, scopes) {
    if (!S.token) throw new Error("Consentry.requestConnection needs the learner's token in load()");
    await (S.ready || load());
    const [integration, providers] = await Promise.all([
      json("GET", `v1/integrations/${encodeURIComponent(integrationId)}?language=${language()}`),
      json("GET", "v1/providers?limit=1000").then((r) => r.items).catch(() => []),
    ]);
    const asked = scopes && scopes.length ? scopes : integration.scopes.map((s) => s.id);
    await domReady();
    const shadow = await root();
    let opener = document.activeElement;
    while (opener && opener.shadowRoot && opener.shadowRoot.activeElement) opener = opener.shadowRoot.activeElement;
    return new Promise((resolve) => {
      let answer = { decision: null, status: null, scopes: [] };
      const error = h("p", { class: "error", role: "alert" });
      const choose = (decision) => async () => {
        try {
          const after = await setConnection(integrationId, decision, asked);
          answer = { decision, status: after.status, scopes: after.scopes };
          dialog.close();
        } catch (failure) {
          error.textContent = failure.status === 401 ? t("expired") : t("failed");
        }
      };
      const dialog = h("dialog", { class: "modal confirm", lang: language(), tabindex: "-1",
        "aria-labelledby": "cs-ask-title", "aria-describedby": "cs-ask-title-why" },
      h("h2", { id: "cs-ask-title" }, named(tc("ask"), integration.name)),
      connectionFacts(integration, asked, providers, "cs-ask-title"), error,
      h("div", { class: "actions" }, h("div", { class: "pair" },
        h("button", { type: "button", class: "btn", "data-action": "approve", onclick: choose("approve") }, tc("approve")),
        h("button", { type: "button", class: "btn", "data-action": "decline", onclick: choose("decline") }, tc("decline")))));
      dialog.addEventListener("close", () => {
        dialog.remove();
        if (opener && opener.isConnected && opener.focus) opener.focus();
        resolve(answer);
      });
      shadow.append(dialog);
      dialog.showModal();
      dialog.focus(); // neither answer is preselected
    });
  }


  // After the erasure: what the consent service deleted at once, and where each service stands.
  function erasureReport(view) {
    const section = h("section", { "data-erasure-report": "" });
    ownRequest().then((request) => {
      if (!request || !request.erased_at) return;
      const kinds = t("kinds");
      const counts = Object.entries(request.deleted || {}).filter(([, n]) => n > 0)
        .map(([kind, n]) => h("li", null, `${kinds[kind] || kind.replace(/_/g, " ")}: ${n}`));
      section.append(heading(view, 1, null, t("erasedTitle")),
        h("p", null, fill(t("erasedOwn"), { date: dayText(request.erased_at) })),
        counts.length ? h("ul", { class: "list" }, counts) : null,
        request.retained_until ? h("p", null, fill(t("erasedKept"), { date: dayText(request.retained_until) })) : null);
      if (request.systems.length) {
        const states = t("systemStatus");
        section.append(h("p", null, t("erasedSystems")), h("ul", { class: "list", "data-systems": "" },
          request.systems.map((system) => h("li", { "data-system": system.id },
            h("strong", null, system.id), ": ",
            fill(states[system.status] || system.status, { date: system.confirmed_at ? dayText(system.confirmed_at) : "" })))));
      }
      section.append(h("p", null, request.status === "completed" ?
        fill(t("erasedDone"), { date: dayText(request.completed_at) }) :
        fill(t("erasedDue"), { date: dayText(request.due_by) })));
    }).catch(() => {});
    return section;
  }

  // ---- the public API ------------------------------------------------------------------------

  window.Consentry = Object.freeze({
    load,
    allowed,
    onChange(callback) {
      S.listeners.push(callback);
      if (S.state) queueMicrotask(() => notify(callback));
      return () => { S.listeners = S.listeners.filter((l) => l !== callback); };
    },
    openPreferences,
    requestConnection,
    state: snapshot,
    language,
    setLanguage(value) {
      if (pickLang(value)) setCookie(LANG_COOKIE, pickLang(value));
    },
  });

  consentMode();
  document.addEventListener("DOMContentLoaded", runScripts);
  // A link or button marked data-consentry-preferences opens the settings, with no inline code.
  document.addEventListener("click", (event) => {
    const opener = event.target.closest && event.target.closest("[data-consentry-preferences]");
    if (!opener) return;
    event.preventDefault();
    openPreferences();
  });
})();
