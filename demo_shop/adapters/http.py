"""What the payments and inventory clients share: an httpx client and its error translation."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

from ..calls import GuardedCalls
from ..errors import DependencyUnavailable, OutcomeUnknown
from ..resilience import Deadline, Timeouts, call_retried


def http_translator(
    dependency: str, *, deadline_bound: bool = False
) -> Callable[[BaseException], DependencyUnavailable | None]:
    """Map httpx errors: not sent -> DependencyUnavailable; maybe processed -> OutcomeUnknown.

    deadline_bound: the call's read timeout was cut short by the checkout deadline, so a
    read timeout is the shopper's deadline running out (kind "deadline"), not the
    dependency failing its own timeout.
    """
    read_timeout = "deadline" if deadline_bound else "timeout"

    def translate(exc: BaseException) -> DependencyUnavailable | None:
        if isinstance(exc, httpx.ConnectTimeout):
            return DependencyUnavailable(dependency, "timeout", "connect timed out")
        if isinstance(exc, httpx.PoolTimeout):
            return DependencyUnavailable(dependency, "saturated", "no free connection")
        if isinstance(exc, httpx.ConnectError):
            return DependencyUnavailable(dependency, "refused", "could not connect")
        if isinstance(exc, httpx.TimeoutException):
            return OutcomeUnknown(dependency, read_timeout, "no answer in time")
        if isinstance(exc, httpx.TransportError):
            return OutcomeUnknown(dependency, "reset", "connection lost")
        if isinstance(exc, ValueError):  # a reply that is not the JSON we expect
            return OutcomeUnknown(dependency, "garbled", "unreadable answer")
        return None

    return translate


def raise_for_server_error(dependency: str, response: httpx.Response) -> None:
    """A 5xx: 502/503/504/429 mean it did not take the request; a 500 may have done it."""
    if response.status_code in (429, 502, 503, 504):
        raise DependencyUnavailable(dependency, "status", f"answered {response.status_code}")
    if response.status_code >= 500:
        raise OutcomeUnknown(dependency, "status", f"answered {response.status_code}")


# When the call in progress on this thread (or greenlet) must have its answer, by
# time.monotonic(); None: only the per-operation timeouts apply.
_CALL_ENDS: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "call_ends", default=None)


def _left(timeout: float | None) -> float | None:
    """The timeout for one socket operation: at most what is left of the whole call.
    httpx's own timeouts are per operation, so an answer that trickles a few bytes every
    few hundred ms never times out; this makes the call's time the limit, not each read's."""
    ends = _CALL_ENDS.get()
    if ends is None:
        return timeout
    left = ends - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the call's time is up")
    return left if timeout is None else min(timeout, left)


class _CallBoundStream(httpcore.NetworkStream):
    """A connection whose every read and write waits at most what is left of the call."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _CallBoundStream(self._stream.start_tls(ssl_context, server_hostname,
                                                       _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _CallBoundBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, each connection bound by the call's total time."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _CallBoundStream(self._backend.connect_tcp(
            host, port, _left(timeout), local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        return _CallBoundStream(self._backend.connect_unix_socket(
            path, _left(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _call_bound_transport(limits: httpx.Limits) -> httpx.HTTPTransport:
    """httpx's transport over a connection pool whose sockets honour the call's total time
    (httpx has no total timeout; httpcore takes a network backend, httpx does not pass one)."""
    transport = httpx.HTTPTransport(limits=limits)
    transport._pool = httpcore.ConnectionPool(
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry, network_backend=_CallBoundBackend())
    return transport


class JsonHttp:
    """A keep-alive httpx client whose every call is bounded by Timeouts and a Deadline:
    each socket operation by its timeout, the whole call (connect, send, every read of
    the answer) by the time the deadline leaves it."""

    def __init__(self, base_url: str, timeouts: Timeouts, max_connections: int = 50,
                 token: str = "") -> None:
        self._timeouts = timeouts
        # Idle connections are dropped after 2 s, well before the services' gunicorn
        # closes them (10 s): reusing one the server is closing races into a reset.
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=20,
                              keepalive_expiry=2.0)
        self._client = httpx.Client(
            base_url=base_url, transport=_call_bound_transport(limits),
            headers={"User-Agent": "demo-shop",
                     # The services take a state-changing call only with the install's token.
                     **({"Authorization": f"Bearer {token}"} if token else {})},
        )

    def request(
        self,
        method: str,
        path: str,
        deadline: Deadline,
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request, with connect and read timeouts capped by the deadline and the
        whole call ended when the read timeout (so capped) has passed."""
        connect, read = self._timeouts.cap(deadline)
        timeout = httpx.Timeout(read, connect=connect, pool=read)
        if json is None and method in ("POST", "PUT", "PATCH"):
            json = {}  # a state-changing call is always JSON (the services take no other)
        if not self._timeouts.within_deadline:  # a shop without deadlines: per read only
            return self._client.request(
                method, path, json=json, headers=headers, params=params, timeout=timeout)
        token = _CALL_ENDS.set(time.monotonic() + read)
        try:
            return self._client.request(
                method, path, json=json, headers=headers, params=params, timeout=timeout)
        finally:
            _CALL_ENDS.reset(token)

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()


class DependencyClient:
    """What the payments and inventory clients share: an instrumented, guarded JSON call
    that may be retried (every call to these services is idempotent, by key or id).
    Subclasses name their dependency and turn their business answers into shop errors."""

    dependency = ""

    def __init__(self, base_url: str, timeouts: Timeouts, calls: GuardedCalls,
                 token: str = "") -> None:
        self._http = JsonHttp(base_url, timeouts, token=token)
        self._timeouts = timeouts
        self._calls = calls
        self._translate = http_translator(self.dependency)
        self._translate_deadline_bound = http_translator(self.dependency, deadline_bound=True)

    def business_error(self, response: httpx.Response, body: dict[str, Any]) -> None:
        """Raise the shop error for a business answer (declined, sold out, ...)."""

    def _call(
        self, operation: str, method: str, path: str, deadline: Deadline,
        retry: bool = True, **kwargs: Any,
    ) -> dict[str, Any]:
        guard = self._calls.guard(self.dependency) if retry else None
        return call_retried(
            lambda: self._call_once(operation, method, path, deadline, **kwargs),
            guard, deadline)

    def _call_once(
        self, operation: str, method: str, path: str, deadline: Deadline, *,
        probe: bool = False, **kwargs: Any,
    ) -> dict[str, Any]:
        bound = self._timeouts.within_deadline and deadline.remaining() < self._timeouts.read
        translate = self._translate_deadline_bound if bound else self._translate
        with self._calls.call(self.dependency, operation, translate, probe=probe):
            response = self._http.request(method, path, deadline, **kwargs)
            raise_for_server_error(self.dependency, response)
            body: dict[str, Any] = response.json()
            self.business_error(response, body)
            if response.status_code >= 400:
                raise ValueError(f"{self.dependency} rejected the request: "
                                 f"{response.status_code}")
            return body

    def probe(self) -> None:
        """A cheap health call, with the read timeout real calls get (a slow dependency
        shows as slow, not down), never retried."""
        self._call_once("health", "GET", "/healthz", Deadline(self._timeouts.read), probe=True)

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()
