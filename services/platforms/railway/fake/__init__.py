"""A fake of Railway's public GraphQL API for tests, benchmarks and `make up`.

fake = FakeRailway(FakeSettings(project_create_interval=0.3))
async with serve(fake.app()) as url:   # POST {url}/graphql/v2
    ...
fake.calls["ServiceCreate"], fake.store.leftovers(), fake.deploys.plan("crash")
"""

from services.platforms.railway.fake.deploys import DeploySettings
from services.platforms.railway.fake.server import FakeRailway, FakeSettings

__all__ = ["DeploySettings", "FakeRailway", "FakeSettings"]
