"""`python -m services`: serve the services app. Migrations run in a prestart step, not here."""

from __future__ import annotations

import uvicorn

from services.config import Settings
from services.main import create_app
from shared.logging import configure_logging


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, access_log=False)


if __name__ == "__main__":
    main()
