"""The real services app (local provider, real runtime processes), shared with the tick tests."""

from tests.pool.tick.conftest import data_dir, services, services_settings

__all__ = ["data_dir", "services", "services_settings"]
