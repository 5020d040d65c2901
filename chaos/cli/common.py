"""What every command shares: the console, friendly errors, the stack from the environment,
report folders, the --shop option."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from ..errors import HarnessError
from ..stack import PROJECT_ROOT, Stack, StackConfig

if TYPE_CHECKING:
    from ..target import Target

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Turn HarnessError (and anything unexpected) into a message and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return func(*args, **kwargs)
        except HarnessError as exc:
            if debug:
                raise
            console.print(f"[bold red]error:[/] {exc}")
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            sys.exit(130)
        except Exception as exc:
            if debug:
                raise
            console.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: {exc}\n"
                          "Run again with --debug for the traceback.")
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def report_dir(out: Path | None, name: str) -> Path:
    """The folder asked for, or reports/<name>-<time>."""
    return out or PROJECT_ROOT / "reports" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def env_stack(target: Path | None = None) -> Stack:
    """The stack of the environment (CC_RUN_DIR, CC_*_PORT) for a target file: the shop
    it names under `stack:` and its proxies' names (the reference shop's by default)."""
    from ..target import stack_config

    config = stack_config(target) if target is not None else StackConfig.from_env()
    return Stack(config, progress=lambda m: console.print(f"  {m}"))


def target_option(func: F) -> F:
    """--target: the target file (default targets/reference.yaml; CC_TARGET)."""
    return click.option("--target", "target_file", type=click.Path(path_type=Path),
                        default=None, envvar="CC_TARGET", show_envvar=True,
                        help="The target file: the shop under test, its Toxiproxy and "
                             "ledgers (default targets/reference.yaml).")(func)


def stack_and_target(target_file: Path | None) -> tuple[Stack, Target]:
    """The stack for a target file, and the target validated against it (a bad file or an
    unset ${...} is exit 2 before anything starts)."""
    from ..target import load_target

    stack = env_stack(target_file)
    return stack, load_target(target_file, stack.config)


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def main(debug: bool) -> None:
    """Chaos experiments for e-commerce checkout."""


OBSERVE_HELP = ("Start Prometheus and Alertmanager beside the stack, so the report draws "
                "the shop's own series too and paging is judged.")
SHOP_HELP = ("The shop to run against: resilient, fragile (every safeguard off) or "
             "without:<safeguard>[,...]. Default: what each experiment declares.")


def master_port_option(func: F) -> F:
    """--master-port: where a Locust master takes its workers (loopback)."""
    from loadtests.run import MASTER_PORT

    return click.option("--master-port", type=click.IntRange(1, 65535), default=MASTER_PORT,
                        show_default=True,
                        help="The port the Locust master takes its workers on.")(func)


def shop_option(text: str | None) -> Any:
    from ..experiment import ShopProfile

    if text is None:
        return None
    try:
        return ShopProfile.parse(text)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        raise click.BadParameter(str(exc).splitlines()[-1] if "\n" in str(exc) else str(exc),
                                 param_hint="--shop") from None


def view_for(name: str) -> Any:
    from ..view import live_view

    return live_view(console, name)


def say(line: str) -> None:
    console.print(line)
