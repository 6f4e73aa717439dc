import logging
import sys

import uvicorn
from pydantic import ValidationError

from runtime.app import create_app
from runtime.config import Settings

log = logging.getLogger("runtime")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings()
    except ValidationError as exc:
        # pydantic's own message echoes input values, which may include secrets; log only field and reason.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        log.error("runtime.config.invalid problems=%r", problems)
        sys.exit(2)
    app = create_app(settings)
    log.info(
        "runtime.started instance_id=%s host=%s port=%s data_dir=%s version=%s",
        settings.instance_id,
        settings.host,
        settings.port,
        settings.data_dir,
        settings.runtime_version,
    )
    # Access logs are off: the runtime logs its own events, one line each.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
