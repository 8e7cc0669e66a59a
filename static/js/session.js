// Live session page: poll the JSON status and update the page in place (no reload).
// The status line is an aria-live region, so screen readers hear each change of status.
(function () {
  "use strict";
  const root = document.getElementById("live");
  if (!root) { return; }
  const statusUrl = root.dataset.statusUrl;
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 1500;
  let failures = 0;
  let lastStatus = null;
  let lastPlan = null;
  let lastChart = null;
  // The controller's estimate (web/pages/live.py): counted on each second between polls from
  // the server's parameters, on the server's clock (which may run faster in a demo).
  let est = null;
  let purchasedWh = 0;
  let serverNow0 = 0;
  let clientNow0 = 0;
  let speed = 1;

  // Numbers and words in the page's language (templates/driver/live.html's data-*-label).
  const lang = document.documentElement.lang || "en";
  function fixed2(value) { return Number(value).toLocaleString(lang, { minimumFractionDigits: 2, maximumFractionDigits: 2 }); }
  function kwh(wh) { return fixed2(wh / 1000); }
  function label(name, fallback, values) {
    let text = root.dataset[name] || fallback;
    Object.keys(values || {}).forEach(function (key) { text = text.split("%(" + key + ")s").join(values[key]); });
    return text;
  }
  function aboutMinutes(minutes) { return label("etaLabel", "about %(minutes)s min", { minutes: minutes }); }

  function tick() {
    if (!est || !est.counting || !est.as_of) { return; }
    let end = serverNow0 + (Date.now() - clientNow0) * speed;
    if (est.until) { end = Math.min(end, Date.parse(est.until)); }
    const hours = Math.max(0, end - Date.parse(est.as_of)) / 3600000;
    const grow = function (base, power) { return base < est.cap_wh ? Math.min(est.cap_wh, base + power * hours) : base; };
    const best = Math.min(grow(est.delivered_wh, est.power_w), purchasedWh);
    const percent = purchasedWh ? Math.min(100, Math.round(100 * best / purchasedWh)) : 0;
    $("delivered").textContent = kwh(best);
    $("percent").textContent = percent;
    $("progress").value = percent;
    $("progress").textContent = percent + " %";
    $("est-low").textContent = kwh(Math.min(grow(est.low_wh, est.power_low_w), purchasedWh));
    $("est-high").textContent = kwh(Math.min(grow(est.high_wh, est.power_high_w), purchasedWh));
    if (est.power_w > 0 && lastStatus === "charging") {
      $("eta").textContent = aboutMinutes(Math.max(0, Math.round((est.cap_wh - best) / est.power_w * 60)));
    }
  }

  function renderPlan(plan) {
    // The plan section exists only for smart sessions; its texts come ready from the server.
    if (!plan || !$("smart-plan")) { return; }
    if (plan.state_label !== $("plan-state-label").textContent) {
      // Like the status line: touch the live region only when the state really changes.
      $("plan-state-label").textContent = plan.state_label;
      $("plan-state-label").className = "badge badge-plan-" + plan.state;
    }
    $("plan-deadline").textContent = plan.deadline;
    $("plan-deadline").hidden = !plan.deadline;
    const windows = JSON.stringify(plan.windows);
    if (windows !== lastPlan) {
      const list = $("plan-windows");
      list.replaceChildren();
      (plan.windows.length ? plan.windows : [label("noWindowLabel", "No window left to charge in.")]).forEach(function (label) {
        const item = document.createElement("li");
        item.textContent = label;
        list.appendChild(item);
      });
      lastPlan = windows;
    }
    $("plan-replans").textContent = label("replansLabel", "(re-planned %(replans)s×: the car charged slower or a grid event came)", { replans: plan.replans });
    $("plan-replans").hidden = !plan.replans;
    $("plan-saving").hidden = !plan.saving || plan.saving_minor <= 0;
    $("plan-saving-amount").textContent = plan.saving;
    $("plan-cost").textContent = plan.expected_cost;
    $("plan-immediate").textContent = plan.immediate_cost;
  }

  function render(data) {
    $("progress").value = data.percent;
    $("progress").textContent = data.percent + " %";
    $("percent").textContent = data.percent;
    $("delivered").textContent = fixed2(data.delivered_kwh);
    $("purchased").textContent = fixed2(data.purchased_kwh);
    $("power").textContent = data.power_kw ? Number(data.power_kw).toLocaleString(lang, { maximumFractionDigits: 2 }) + " kW" : "—";
    $("eta").textContent = data.eta_minutes === null ? "—" : aboutMinutes(data.eta_minutes);
    $("money").textContent = data.money_used;
    $("age").textContent = data.data_age;
    est = data.estimate;
    purchasedWh = Math.round(data.purchased_kwh * 1000);
    serverNow0 = Date.parse(data.now);
    clientNow0 = Date.now();
    speed = data.clock_speed || 1;
    $("estimate-line").hidden = !data.estimating;
    $("est-low").textContent = fixed2(data.delivered_low_kwh);
    $("est-high").textContent = fixed2(data.delivered_high_kwh);
    $("next-reading").hidden = !data.next_reading;
    $("next-reading-at").textContent = data.next_reading;
    $("live-note").hidden = !data.note;
    $("live-note").textContent = data.note;
    $("ends-at-box").hidden = data.ends_at_kwh === null;
    $("ends-at").textContent = data.ends_at_kwh === null ? "" : fixed2(data.ends_at_kwh) + " kWh";
    if (data.chart !== lastChart) {
      // Server-rendered and escaped there (web/pages/live.py energy_chart).
      const box = document.createElement("template");
      box.innerHTML = data.chart;
      $("energy-chart").replaceWith(box.content.firstChild);
      lastChart = data.chart;
    }
    if (data.status !== lastStatus || $("reason-message").textContent !== data.reason_message) {
      // Touch the live region only on a change: re-announcing the same words every 2 s is noise.
      $("status-label").textContent = data.status_label;
      $("status-label").className = "badge badge-" + data.status;
      $("reason-message").textContent = data.reason_message;
      lastStatus = data.status;
    }
    $("heading").textContent = data.heading;
    $("credit-back").textContent = data.credit_back;
    $("credit-back").hidden = !data.credit_back;
    $("stop-form").hidden = !data.is_open || data.stop_requested;
    $("done").hidden = data.is_open;
    root.dataset.status = data.status;
    renderPlan(data.plan);
  }

  async function poll() {
    try {
      const response = await fetch(statusUrl, {headers: {Accept: "application/json"}, credentials: "same-origin"});
      if (response.status === 403 || response.status === 302 || response.redirected) {
        $("reason-message").textContent = label("expiredLabel", "Your login expired. Log in again to follow the charge.");
        return;
      }
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      const data = await response.json();
      failures = 0;
      render(data);
      if (!data.is_open) { return; }  // ended: the numbers are final
    } catch (err) {
      failures += 1;
      if (failures >= 3) {
        $("reason-message").textContent = label("offlineLabel", "Lost contact with the server; retrying. The charge goes on regardless.");
      }
    }
    window.setTimeout(poll, POLL_MS * Math.min(failures + 1, 5));
  }

  const initial = JSON.parse(document.getElementById("session-initial").textContent);
  est = initial.estimate;
  purchasedWh = Math.round(initial.purchased_kwh * 1000);
  serverNow0 = Date.parse(initial.now);
  clientNow0 = Date.now();
  speed = initial.clock_speed || 1;
  lastChart = initial.chart;
  window.setInterval(tick, 1000);
  lastStatus = initial.status;
  lastPlan = initial.plan ? JSON.stringify(initial.plan.windows) : null;
  if (initial.is_open) { window.setTimeout(poll, POLL_MS); }
})();
