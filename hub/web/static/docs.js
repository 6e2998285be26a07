"use strict";
// The API reference: Swagger UI on the hub's own OpenAPI document, no inline script.
document.addEventListener("DOMContentLoaded", () => {
  window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
