// The template pages: a confirmation before archiving, and the rollout fields of the chosen
// strategy only. Without this script the forms still work (every field shows, nothing asks).
"use strict";

(function () {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  const strategy = document.getElementById("rollout-strategy");
  if (!strategy) return;
  function showKnobs() {
    document.querySelectorAll("[data-strategy]").forEach((box) => {
      box.hidden = box.dataset.strategy !== strategy.value;
    });
  }
  strategy.addEventListener("change", showKnobs);
  showKnobs();
})();
