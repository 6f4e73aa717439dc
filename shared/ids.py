"""Instance ids: 12 characters of [0-9a-z]: platform resources are named after them, and some
platforms reject upper case in names."""

import re

from nanoid import generate

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
INSTANCE_ID_LENGTH = 12
INSTANCE_ID_PATTERN = re.compile(r"^[0-9a-z]{12}$")


def new_instance_id() -> str:
    return str(generate(ALPHABET, INSTANCE_ID_LENGTH))


def is_instance_id(value: str) -> bool:
    return bool(INSTANCE_ID_PATTERN.match(value))
