"""What agent instances call on the pool about themselves (specs/runtime-callbacks.md): the `/api/pool/*`
callbacks and the `/api/proxy/*` service proxy, forwarded to services, with the instance event log."""
