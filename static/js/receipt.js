// The print button of a receipt (no inline handlers: pages stay CSP-friendly).
document.getElementById("print-button")?.addEventListener("click", function () { window.print(); });
