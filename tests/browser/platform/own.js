// The platform's own code, which must run whatever happens to the consent service.
window.ran.push("page");
