"""What happened in the pool, kept for operators: each instance's lifecycle in its event log
(`instance_events`, shared with the proxied calls of pool/callbacks/events.py) and the minute
samples the dashboard's pictures draw (`template_samples`, `claim_samples`)."""
