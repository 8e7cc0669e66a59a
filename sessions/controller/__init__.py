"""The charging controller: the runtime loop that claims due sessions, the step state machine,
the stop policy and metering."""
