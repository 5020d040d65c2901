"""Per-install secrets: made once for a run folder, kept in `secrets.json` (mode 0600), reused
by every restart, never committed (the run folder is in .gitignore).

The shop signs its cookies (cart, CSRF) with one key and seals stored cards with another;
payments keys its card fingerprints; PostgreSQL and Redis each have a generated password;
the services' state-changing calls and fault admin take the admin token.
No install shares a secret with another, so a cart forged or a card unsealed on one proves
nothing about the next. `make setup` makes them (`main`); `make up` would too.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import StackError

FILE_NAME = "secrets.json"


@dataclass(frozen=True, slots=True)
class Secrets:
    """Every secret one install runs with."""

    shop_secret_key: str  # signs the cookie cart, the session and CSRF tokens
    shop_vault_key: str  # seals a card kept for a payment taken later
    payments_fingerprint_key: str  # keys payments' card fingerprints
    postgres_password: str
    redis_password: str
    # The services' state-changing calls and fault admin take only this (Bearer).
    admin_token: str = ""

    @classmethod
    def generate(cls) -> Secrets:
        """Fresh random secrets (256 bits each, URL-safe so they fit in a DSN)."""
        return cls(**{f.name: secrets.token_urlsafe(32) for f in fields(cls)})

    @classmethod
    def load_or_create(cls, run_dir: Path) -> Secrets:
        """The run folder's secrets, made on first use. A file others can read is closed
        to them again; a damaged one is an error that says how to start over."""
        path = run_dir / FILE_NAME
        if not path.exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            made = cls.generate()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return cls.load_or_create(run_dir)  # another process made them just now
            with os.fdopen(fd, "w") as out:
                json.dump(asdict(made), out, indent=1)
            return made
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
        try:
            data = json.loads(path.read_text())
            missing = [f.name for f in fields(cls) if f.name not in data]
            if missing and set(missing) <= ADDED_LATER:
                # A file from before these secrets existed: add them, keep the others.
                data.update({name: secrets.token_urlsafe(32) for name in missing})
                _rewrite(path, data)
            return cls(**{f.name: _secret(data, f.name) for f in fields(cls)})
        except (ValueError, TypeError, KeyError) as exc:
            raise StackError(f"{path} is damaged ({exc}): stop the stack (`make down`), "
                             "delete the file and run `make up` to make new secrets") from exc


# Secrets added after the first installs: made and written in on first load.
ADDED_LATER = frozenset({"admin_token"})


def _rewrite(path: Path, data: dict[str, object]) -> None:
    """Replace the secrets file atomically, mode 0600."""
    fresh = path.with_suffix(".new")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=1)
    os.replace(fresh, path)


def _secret(data: dict[str, object], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or len(value) < 32:
        raise ValueError(f"{name} is not a generated secret")
    return value


def main(argv: list[str] | None = None) -> None:
    """Make (or keep) the run folder's secrets: `make setup` calls this."""
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0] if args else ".run").resolve()
    Secrets.load_or_create(folder)
    print(f"secrets: {folder / FILE_NAME} (mode 0600)")
