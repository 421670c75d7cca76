// Swagger UI on this service's own document. Served as a file, not inline, so the page's
// Content-Security-Policy allows scripts from this origin only.
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    // "Authorize" with a bearer token, kept in this browser's storage across reloads.
    persistAuthorization: true,
    displayRequestDuration: true,
    filter: true,
    // Never send the document to a validator elsewhere (the badge would fetch one).
    validatorUrl: null,
  });
});
