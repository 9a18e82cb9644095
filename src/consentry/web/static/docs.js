// Starts Swagger UI on /docs. A file of its own, so that the page's CSP allows no inline script.
"use strict";

window.ui = SwaggerUIBundle({
  // Relative to /docs, so the service also works under a path prefix.
  url: "openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  // Never send the document to the public validator service.
  validatorUrl: null,
});
