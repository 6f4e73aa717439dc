"""A fake of Railway's public GraphQL API for tests, benchmarks and `make up`.

fake = FakeRailway(FakeSettings(project_create_interval=0.3))
async with serve(fake.app()) as url:   # POST {url}/graphql/v2
    ...
fake.calls["ServiceCreate"], fake.store.leftovers(), fake.deploys.plan("crash")
"""

from devtools.railway_fake.deploys import DeploySettings
from devtools.railway_fake.server import FakeRailway, FakeSettings

__all__ = ["DeploySettings", "FakeRailway", "FakeSettings"]
