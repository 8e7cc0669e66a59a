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

// The custom amount's price as the driver types it (buy page), and on the charge page the
// duration and the battery level it ends at for the chosen car (facts from the server).
(function () {
  "use strict";
  const input = document.getElementById("id_energy_kwh");
  const price = document.getElementById("custom-price");
  if (input && price && input.dataset.pricePerKwh) {
    const perKwh = Number(input.dataset.pricePerKwh);
    const fallback = price.textContent;
    const show = function () {
      const kwh = Number(input.value);
      const ok = input.value !== "" && kwh >= Number(input.min) && kwh <= Number(input.max);
      price.textContent = ok ? "Costs " + (Math.round(kwh * perKwh * 100) / 100).toFixed(2) + " " + input.dataset.currency : fallback;
    };
    input.addEventListener("input", show);
    show();
  }
  const outlook = document.getElementById("charge-outlook");
  const factsNode = document.getElementById("vehicle-facts");
  const vehicle = document.getElementById("id_vehicle");
  if (!outlook || !factsNode || !input || !vehicle) { return; }
  const facts = JSON.parse(factsNode.textContent);
  const update = function () {
    const car = facts[vehicle.value];
    const kwh = Number(input.value);
    if (!car || !(kwh > 0)) { outlook.textContent = ""; return; }
    const parts = [];
    const perKwh = Number(outlook.dataset.pricePerKwh);
    if (perKwh > 0) { parts.push("About " + (kwh * perKwh).toFixed(2) + " " + outlook.dataset.currency); }
    const minutes = Math.max(1, Math.round(kwh / car.power_kw * 60));
    parts.push((parts.length ? "about " : "About ") + minutes + " minutes at about " + car.power_kw.toFixed(1) + " kW");
    if (car.soc !== null && car.usable_kwh) {
      const end = Math.min(100, car.soc + kwh / car.usable_kwh * 100);
      let text = "the battery goes from " + Math.round(car.soc) + " % to " + Math.round(Math.min(end, car.max_soc)) + " %";
      if (end > car.max_soc) { text += " (its maximum: the rest stays in your wallet)"; }
      parts.push(text);
    }
    outlook.textContent = parts.join("; ") + ".";
  };
  // Start only a car known to be plugged in (the server refuses the others with the same words).
  const blocker = document.getElementById("start-blocker");
  const start = document.getElementById("start-button");
  const check = document.getElementById("check-car");
  const blockerText = function (plugged) {
    if (plugged === true) { return ""; }
    if (plugged === false) { return "Your car is not plugged in. Plug the cable in, then check the car again."; }
    return "We do not know yet whether your car is plugged in. Check the car to read it.";
  };
  const gate = function () {
    const car = facts[vehicle.value];
    if (!blocker || !car) { return; }
    const text = blockerText(car.plugged);
    document.getElementById("start-blocker-text").textContent = text;
    blocker.hidden = !text;
    const when = document.querySelector("input[name=when]:checked");
    if (start) { start.disabled = Boolean(text) && !(when && when.value === "cheapest"); }
    if (check) {
      check.action = check.action.replace(/\/vehicles\/\d+\/refresh\//, "/vehicles/" + vehicle.value + "/refresh/");
      check.querySelector("input[name=next]").value = window.location.pathname + "?vehicle=" + vehicle.value;
    }
  };
  input.addEventListener("input", update);
  vehicle.addEventListener("change", function () { update(); gate(); });
  document.querySelectorAll("input[name=when]").forEach(function (radio) { radio.addEventListener("change", gate); });
  update();
  gate();
})();
