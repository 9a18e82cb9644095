window.ran.push("analytics.js");
