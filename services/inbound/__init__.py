"""Inbound mail and SMS: the vendors' webhooks, verified as each vendor signs them, delivered to the
owning instance's runtime (`POST /convos/notify`)."""
