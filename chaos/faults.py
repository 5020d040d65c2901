"""The fault adapter: the one module that imports toxiproxy-python.

Every toxic the harness makes carries the HARNESS_PREFIX in its name, so leftovers
from a killed run can be found and swept without touching anyone else's toxics.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from .errors import FaultError
from .vocabulary import NETWORK_TOXICS

HARNESS_PREFIX = "cc_"
TOXIC_TYPES = frozenset(NETWORK_TOXICS)
STREAMS = frozenset({"upstream", "downstream"})
T = TypeVar("T")
_ADDRESS_LOCK = threading.RLock()


@dataclass(frozen=True, slots=True)
class ProxySpec:
    """A proxy named after the dependency it stands for."""

    name: str
    listen: str
    upstream: str


@dataclass(frozen=True, slots=True)
class ToxicInfo:
    """A toxic as Toxiproxy reports it."""

    proxy: str
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any]


class FaultInjector:
    """inject / roll_back / sweep faults on one Toxiproxy server."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8474) -> None:
        self.address = f"{host}:{port}"
        self._host, self._port = host, port
        self._server = Toxiproxy()

    @contextmanager
    def _api(self, what: str) -> Iterator[None]:
        """Point the client at this server and turn its errors into FaultError.

        toxiproxy-python keeps the API address on a class shared by every client, so each
        call sets it under a lock: two injectors (two Toxiproxy servers) never cross.
        """
        try:
            with _ADDRESS_LOCK:
                self._server.update_api_consumer(self._host, self._port)
                yield
        except requests.ConnectionError as exc:
            raise FaultError(
                f"Toxiproxy is not reachable at {self.address} ({what}): is the stack up? "
                "Run `make up`, or set CC_TOXIPROXY_PORT to the port it listens on."
            ) from exc
        except NotFound as exc:
            raise FaultError(f"Toxiproxy has no such proxy or toxic ({what})") from exc
        except InvalidToxic as exc:
            raise FaultError(f"Toxiproxy rejected {what}: {_text(exc)}") from exc
        except ProxyExists as exc:
            raise FaultError(f"proxy already exists ({what})") from exc
        except requests.RequestException as exc:
            raise FaultError(f"Toxiproxy call failed ({what}): {exc}") from exc

    def _call(self, what: str, action: Callable[[], T]) -> T:
        with self._api(what):
            return action()

    def version(self) -> str:
        """The server's version; raises FaultError when unreachable."""
        with self._api("version"):
            raw = APIConsumer.get("/version", timeout=2).content
        return raw.decode().strip() if isinstance(raw, bytes) else str(raw)

    def ensure_proxies(self, specs: list[ProxySpec]) -> None:
        """Create the proxies, replacing any with the same name but another address."""
        payload = [{"name": s.name, "listen": s.listen, "upstream": s.upstream} for s in specs]
        self._call("creating proxies", lambda: self._server.populate(payload))
        for spec in specs:
            self.enable(spec.name)

    def remove_proxy(self, name: str) -> None:
        """Delete a proxy the harness made for one run (a no-op when it is gone)."""
        proxies = self._call("listing proxies", self._server.proxies)
        if name in proxies:
            self._call(f"removing proxy {name}", proxies[name].destroy)

    def close_exposed(self) -> list[str]:
        """Remove every proxy that listens beyond loopback (one made through the API by
        anybody but the harness: it would open a dependency, or a simulator's admin, to
        the network); what it removed."""
        done = []
        for name, proxy in self._call("listing proxies", self._server.proxies).items():
            host = str(proxy.listen).rpartition(":")[0].strip("[]")
            if not _LOOPBACK_LISTEN.match(host):
                self._call(f"removing proxy {name}", proxy.destroy)
                done.append(f"removed proxy {name}: it listened on {proxy.listen}, "
                            "beyond loopback")
        return done

    def proxy_names(self) -> dict[str, bool]:
        """Every proxy's name and whether it is enabled."""
        proxies = self._call("listing proxies", self._server.proxies)
        return {name: bool(p.enabled) for name, p in proxies.items()}

    def _proxy(self, name: str) -> Any:
        proxy = self._call(f"looking up proxy {name!r}", lambda: self._server.get_proxy(name))
        if proxy is None:
            known = ", ".join(sorted(self.proxy_names())) or "none"
            raise FaultError(f"Toxiproxy has no proxy named {name!r} (it has: {known})")
        return proxy

    def disable(self, name: str) -> None:
        """Take a proxy down: connections are refused and open ones dropped."""
        proxy = self._proxy(name)
        self._call(f"disabling {name}", proxy.disable)

    def enable(self, name: str) -> None:
        """Bring a proxy back up."""
        proxy = self._proxy(name)
        self._call(f"enabling {name}", proxy.enable)

    def inject(
        self,
        proxy_name: str,
        toxic_type: str,
        *,
        name: str,
        stream: str = "downstream",
        attributes: dict[str, Any] | None = None,
        toxicity: float = 1.0,
    ) -> str:
        """Add a toxic; returns its full (prefixed) name, to roll it back by."""
        if toxic_type not in TOXIC_TYPES:
            raise FaultError(
                f"unknown toxic {toxic_type!r}: use one of {', '.join(sorted(TOXIC_TYPES))}"
            )
        if stream not in STREAMS:
            raise FaultError(f"unknown stream {stream!r}: use upstream or downstream")
        full_name = name if name.startswith(HARNESS_PREFIX) else HARNESS_PREFIX + name
        proxy = self._proxy(proxy_name)
        self._call(
            f"adding {toxic_type} to {proxy_name}",
            lambda: proxy.add_toxic(type=toxic_type, name=full_name, stream=stream,
                                    toxicity=toxicity, attributes=attributes or {}),
        )
        return full_name

    def roll_back(self, proxy_name: str, toxic_name: str) -> None:
        """Remove one toxic; one already gone is fine."""
        proxy = self._proxy(proxy_name)
        try:
            self._call(f"removing {toxic_name}", lambda: proxy.destroy_toxic(toxic_name))
        except FaultError as exc:
            if not isinstance(exc.__cause__, NotFound):
                raise

    def toxics(self) -> list[ToxicInfo]:
        """Every toxic on every proxy."""
        found = []
        for name in self.proxy_names():
            proxy = self._proxy(name)
            for toxic in self._call(f"listing toxics of {name}", proxy.toxics).values():
                found.append(ToxicInfo(name, toxic.name, toxic.type, toxic.stream,
                                       float(toxic.toxicity), dict(toxic.attributes)))
        return found

    def sweep(self, proxies: list[str] | None = None) -> list[str]:
        """Remove every harness toxic and re-enable the named proxies; returns what it did."""
        return self.sweep_toxics() + self.enable_all(proxies)

    def sweep_toxics(self) -> list[str]:
        """Remove every harness toxic; returns what it did."""
        done = []
        for toxic in self.toxics():
            if toxic.name.startswith(HARNESS_PREFIX):
                self.roll_back(toxic.proxy, toxic.name)
                done.append(f"removed {toxic.name} from {toxic.proxy}")
        return done

    def enable_all(self, proxies: list[str] | None = None) -> list[str]:
        """Re-enable the named proxies (every proxy by default); returns what it did."""
        done = []
        states = self.proxy_names()
        for name in proxies if proxies is not None else list(states):
            if name in states and not states[name]:
                self.enable(name)
                done.append(f"re-enabled {name}")
        return done


_LOOPBACK_LISTEN = re.compile(r"^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|::1)$")


def _text(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else ""
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
