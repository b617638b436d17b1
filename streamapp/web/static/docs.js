// Starts Swagger UI on the app's own /openapi.json; everything comes from this server (no CDN).
// Outside dev the document needs the read or admin token: then a form asks for it, and the
// token also authorizes "Try it out" on the read routes.
"use strict";

const form = document.getElementById("token-form");
const error = document.getElementById("token-error");

async function show(token) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const answer = await fetch("openapi.json", { headers: headers });
  if (answer.status === 401) {
    form.hidden = false;
    error.textContent = token ? "That token was refused." : "";
    return;
  }
  if (!answer.ok) {
    form.hidden = false;
    error.textContent = "The API description did not load (HTTP " + answer.status + ").";
    return;
  }
  form.hidden = true;
  const ui = SwaggerUIBundle({
    spec: await answer.json(),
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The default sends the document to an online validator: offline, and not ours to share.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
  if (token) {
    ui.preauthorizeApiKey("readToken", token);
  }
  window.ui = ui;
}

form.addEventListener("submit", function (event) {
  event.preventDefault();
  show(document.getElementById("token").value.trim());
});

show(null);
