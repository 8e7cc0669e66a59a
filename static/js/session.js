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
      (plan.windows.length ? plan.windows : ["No window left to charge in."]).forEach(function (label) {
        const item = document.createElement("li");
        item.textContent = label;
        list.appendChild(item);
      });
      lastPlan = windows;
    }
    $("plan-replans").textContent = "(re-planned " + plan.replans + "×: the car charged slower or a grid event came)";
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
    $("delivered").textContent = data.delivered_kwh.toFixed(2);
    $("purchased").textContent = data.purchased_kwh.toFixed(2);
    $("power").textContent = data.power_kw ? data.power_kw + " kW" : "—";
    $("eta").textContent = data.eta_minutes === null ? "—" : "about " + data.eta_minutes + " min";
    $("money").textContent = data.money_used;
    $("age").textContent = data.data_age;
    if (data.status !== lastStatus || $("reason-message").textContent !== data.reason_message) {
      // Touch the live region only on a change: re-announcing the same words every 2 s is noise.
      $("status-label").textContent = data.status_label;
      $("status-label").className = "badge badge-" + data.status;
      $("reason-message").textContent = data.reason_message;
      lastStatus = data.status;
    }
    $("stop-form").hidden = !data.is_open || data.stop_requested;
    $("done").hidden = data.is_open;
    root.dataset.status = data.status;
    renderPlan(data.plan);
  }

  async function poll() {
    try {
      const response = await fetch(statusUrl, {headers: {Accept: "application/json"}, credentials: "same-origin"});
      if (response.status === 403 || response.status === 302 || response.redirected) {
        $("reason-message").textContent = "Your login expired. Log in again to follow the charge.";
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
        $("reason-message").textContent = "Lost contact with the server; retrying. The charge goes on regardless.";
      }
    }
    window.setTimeout(poll, POLL_MS * Math.min(failures + 1, 5));
  }

  const initial = JSON.parse(document.getElementById("session-initial").textContent);
  lastStatus = initial.status;
  lastPlan = initial.plan ? JSON.stringify(initial.plan.windows) : null;
  if (initial.is_open) { window.setTimeout(poll, POLL_MS); }
})();
