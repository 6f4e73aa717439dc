"""Errors the runtime answers with, rendered as `{"error": "<ClassName>", "detail": "<message>"}`.

RuntimeAppError
├── BadRequest       400
├── Unauthorized     401
├── Conflict         409  already bound to a conversation; an import into an instance not clean
├── TooLarge         413  agent state past RUNTIME_STATE_MAX_BYTES
├── ProvisionFailed  500  the RUNTIME_FAIL_PROVISION knob
├── ImportFailed     500  the RUNTIME_FAIL_IMPORT knob
└── NotReady         503  still starting up
"""


class RuntimeAppError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(RuntimeAppError):
    status_code = 400


class Unauthorized(RuntimeAppError):
    status_code = 401


class Conflict(RuntimeAppError):
    status_code = 409


class TooLarge(RuntimeAppError):
    status_code = 413


class ProvisionFailed(RuntimeAppError):
    status_code = 500


class ImportFailed(RuntimeAppError):
    status_code = 500


class NotReady(RuntimeAppError):
    status_code = 503
