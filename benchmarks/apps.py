from django.apps import AppConfig


class BenchmarksConfig(AppConfig):
    """Benchmarks and their management commands: stop accuracy against vehicle API calls
    (`fleet_benchmark`), controller throughput (`controller_benchmark`), the smart-charging planner
    (`smart_benchmark`) and the Stripe webhook endpoint under load (`webhook_loadtest`).

    They import the product and the simulator; the product never imports them."""

    name = "benchmarks"
    verbose_name = "Benchmarks"
