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

// The price, the duration and the battery level it ends at for the chosen car, said again as the
// amount, the package or the car changes (the charge form and the buy page; the server says the
// same on load: web/pages/decide.py `outlook`), and the custom amount's price as it is typed. The
// words come from the page in its language (#outlook-words), the facts of each car from the
// server (#vehicle-facts); numbers are written in the page's language.
(function () {
  "use strict";
  const lang = document.documentElement.lang || "en";
  const wordsNode = document.getElementById("outlook-words");
  const words = wordsNode ? JSON.parse(wordsNode.textContent) : {};
  const fill = function (template, values) {
    return template.replace(/%\((\w+)\)[sd]|%%/g, function (all, name) { return name ? String(values[name]) : "%"; });
  };
  const number = function (value, places) {
    return Number(value).toLocaleString(lang, { minimumFractionDigits: places, maximumFractionDigits: places });
  };
  const money = function (major) { return number(Math.round(major * 100) / 100, 2) + " " + words.currency; };

  const input = document.getElementById("id_energy_kwh");
  const price = document.getElementById("custom-price");
  if (input && price && input.dataset.pricePerKwh) {
    const perKwh = Number(input.dataset.pricePerKwh);
    const fallback = price.textContent;
    const show = function () {
      const kwh = Number(input.value);
      const ok = input.value !== "" && kwh >= Number(input.min) && kwh <= Number(input.max);
      price.textContent = ok ? fill(words.costs, { custom_price: money(kwh * perKwh) }) : fallback;
    };
    input.addEventListener("input", show);
    show();
  }
  const outlook = document.getElementById("charge-outlook");
  const factsNode = document.getElementById("vehicle-facts");
  const vehicle = document.getElementById("id_vehicle");
  if (!outlook || !factsNode || !input || !vehicle) { return; }
  const facts = JSON.parse(factsNode.textContent);
  // What is chosen: a package (buy page) at its price, or the amount typed at the price per kWh
  // (the buy page's tariff; on the charge form what the wallet's credit cost).
  const chosen = function () {
    const pkg = document.querySelector("input[name=package]:checked");
    if (pkg && pkg.value) { return { kwh: Number(pkg.dataset.kwh), price: Number(pkg.dataset.price) }; }
    const kwh = Number(input.value);
    const perKwh = Number(input.dataset.pricePerKwh || outlook.dataset.pricePerKwh);
    return { kwh: kwh, price: perKwh > 0 ? kwh * perKwh : null };
  };
  const update = function () {
    const car = facts[vehicle.value];
    const choice = chosen();
    if (!car || !(choice.kwh > 0)) { outlook.textContent = ""; return; }
    const parts = [];
    if (choice.price !== null) { parts.push(fill(words.price, { price: money(choice.price) })); }
    const minutes = Math.max(1, Math.round(choice.kwh / car.power_kw * 60));
    const duration = fill(minutes === 1 ? words.minute_one : words.minute_other, { n: minutes });
    parts.push(fill(words.duration, { duration: duration, kw: number(car.power_kw, 1) }));
    if (car.soc !== null && car.usable_kwh) {
      const end = Math.min(100, car.soc + choice.kwh / car.usable_kwh * 100);
      let text = fill(words.battery, { start: Math.round(car.soc), end: Math.round(Math.min(end, car.max_soc)) });
      if (end > car.max_soc) { text += " " + words.capped; }
      parts.push(text);
    }
    const said = parts.join("; ") + ".";
    outlook.textContent = said.charAt(0).toUpperCase() + said.slice(1);
  };
  // Start only a car known to be plugged in (the server refuses the others with the same words).
  const blocker = document.getElementById("start-blocker");
  const start = document.getElementById("start-button");
  const check = document.getElementById("check-car");
  const blockerText = function (plugged) {
    if (plugged === true) { return ""; }
    return plugged === false ? words.not_plugged : words.plug_unknown;
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
  document.querySelectorAll("input[name=package]").forEach(function (radio) { radio.addEventListener("change", update); });
  vehicle.addEventListener("change", function () { update(); gate(); });
  document.querySelectorAll("input[name=when]").forEach(function (radio) { radio.addEventListener("change", gate); });
  update();
  gate();
})();
