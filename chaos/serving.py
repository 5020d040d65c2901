"""A loopback HTTP endpoint that one harness process serves once, on first use, for every
run it makes (a gate runs its experiments one after another in one process): the metrics
exporter and the alert receiver."""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Self


class OnePerProcess:
    """`shared(port)` gives the process's one instance on that port, made on first use
    (a new port closes the old one); subclasses take the port and have close()."""

    _lock: ClassVar[threading.Lock]
    _instance: ClassVar[Any] = None
    port: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._lock, cls._instance = threading.Lock(), None

    def __init__(self, port: int) -> None:
        self.port = port

    @classmethod
    def shared(cls, port: int) -> Self:
        """The process's instance on this port; OSError when the port is taken."""
        with cls._lock:
            if cls._instance is None or cls._instance.port != port:
                if cls._instance is not None:
                    cls._instance.close()
                    cls._instance = None
                cls._instance = cls(port)
            instance: Self = cls._instance
            return instance

    def close(self) -> None:
        """Stop serving (tests; a CLI process simply exits)."""
        raise NotImplementedError
