"""Counters every process adds to (monitoring.metrics): one row per series, fleet-wide."""

from django.db import models


class MetricCounter(models.Model):
    """The running total of one counter series (or one histogram bucket, sum or count) over every
    process that ever counted it. Processes add their increments (`value = value + delta`), so
    any number of web, worker and controller processes on any number of machines share one total,
    and a process that restarts or dies keeps what it added."""

    name = models.CharField(max_length=100)
    # The label values, canonical JSON of sorted (name, value) pairs.
    labels = models.CharField(max_length=400, blank=True)
    value = models.FloatField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="metric_counter_series")]

    def __str__(self) -> str:
        return f"{self.name}{self.labels} = {self.value}"
