// Start page: "charge now" hides the deadline; any change after a plan was shown asks for a new
// plan before confirming (the confirmed plan is always the one the driver saw). Without
// JavaScript the form works the same, the deadline is simply always visible.
(function () {
  "use strict";
  const form = document.getElementById("charge-form");
  if (!form) { return; }
  const field = form.querySelector(".deadline-field");
  if (!form.querySelector("input[name=when]")) { return; }  // no car to charge: nothing to time
  const start = document.getElementById("start-button");
  const confirm = document.getElementById("confirm-button");
  const preview = document.getElementById("plan-preview");

  const vehicle = document.getElementById("id_vehicle");
  const timing = document.getElementById("timing-block");  // buy page: only with a car chosen
  // The words come from the page, in its language (data-*-label on the form and the start button).
  const labels = form.dataset;
  const nowLabel = (start && start.dataset.nowLabel) || labels.nowLabel || "Start charging";
  const planLabel = labels.planLabel || "See the plan";
  const newPlanLabel = labels.newPlanLabel || "See the new plan";

  function cheapest() {
    const checked = form.querySelector("input[name=when]:checked");
    const withCar = !timing || (vehicle !== null && vehicle.value !== "");
    return withCar && checked !== null && checked.value === "cheapest";
  }

  function update() {
    if (timing) { timing.hidden = vehicle === null || vehicle.value === ""; }
    if (field) { field.hidden = !cheapest(); }
    if (start) { start.textContent = cheapest() ? planLabel : nowLabel; }
  }

  form.addEventListener("change", function (event) {
    update();
    if (confirm && event.target.name !== "confirm") {
      // The plan on screen no longer matches the form: plan again (or start now) first.
      confirm.hidden = true;
      if (preview) { preview.hidden = true; }
      const again = document.getElementById("replan-button");
      again.textContent = cheapest() ? newPlanLabel : nowLabel;
      again.className = "";
    }
  });
  update();
  if (preview) { preview.focus(); }
})();
