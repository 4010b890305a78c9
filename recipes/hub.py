"""Fail fast without the hub: one quick connection check before anything is downloaded.

huggingface_hub retries a failing download for about a minute before giving up; a person on a
machine with no network should instead learn at once what could not be fetched and what to do
(``--tiny``, or a local path). Files already in the local HF cache are used offline.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from recipes.errors import DataError

_reachable: dict[str, bool] = {}


def hub_host() -> str:
    return urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"


def reachable(host: str, timeout: float = 4.0) -> bool:
    if host not in _reachable:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _reachable[host] = True
        except OSError:
            _reachable[host] = False
    return _reachable[host]


def _cached(repo_id: str, filename: str, repo_type: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, filename, repo_type=repo_type), str)
    except Exception:
        return False


def ensure_available(repo_id: str, *, kind: str, field: str, local_hint: str,
                     tiny: bool = False) -> None:
    """Raise a clear error now if ``repo_id`` must be downloaded and the hub cannot be reached.

    ``kind`` is "model" or "dataset"; ``field`` the recipe field that named it.
    """
    probe = "config.json" if kind == "model" else "README.md"
    if _cached(repo_id, probe, kind):
        if not reachable(hub_host()):
            os.environ["HF_HUB_OFFLINE"] = "1"  # use the cache without a minute of retries
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline or not reachable(hub_host()):
        why = "HF_HUB_OFFLINE is set" if offline else f"{hub_host()} cannot be reached"
        raise DataError(
            f"{kind} '{repo_id}' must be downloaded, but {why} and it is not in the local cache",
            where=field,
            fix=(f"tiny mode trains on sample_dataset: --set sample_dataset={local_hint}"
                 if tiny else
                 f"run offline with --tiny (a miniature model and the bundled sample), or "
                 f"--set {field}={local_hint}"),
        )
