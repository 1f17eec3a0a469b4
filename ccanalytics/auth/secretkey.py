"""The key that signs the admin's session cookies, read from its file or generated once."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ccanalytics.core.errors import ConfigError


def load_or_create_secret_key(path: Path | str) -> str:
    """The key that signs session cookies, kept in ``path`` (mode 0600): read when it exists, else
    generated and written atomically (several processes starting at once agree on one key)."""
    path = Path(path)
    key = _read_key(path)
    if key is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # atomic; fails when another process wrote the key first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        key = _read_key(path)
    if not key:
        raise ConfigError(f"{path} holds no secret key: delete the file or set CCA_SECRET_KEY")
    return key


def _read_key(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the secret key in {path}: {exc}") from None
