"""`make profile`: where the shop's CPU goes during checkout journeys.

Starts its own stack, runs py-spy on every gunicorn worker of the shop while Locust drives
checkout journeys (benchmarks/locust_bench.py Buyer), and on Locust itself, and writes
reports/profile/shop.svg (a flame graph), shop.txt and locust.txt (the functions where most
samples were, self and total).
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import locust, own_stack  # benchmarks/ is on sys.path: this script's folder

from chaos.stack import PROJECT_ROOT

OUT = PROJECT_ROOT / "reports" / "profile"
SECONDS = int(os.environ.get("PROFILE_SECONDS", "20"))


def summary(collapsed: Path, top: int = 25) -> str:
    """Self and total sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1]
                  + ")" if " (" in f else f for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples over {SECONDS} s of checkout journeys", "",
             "self %  function (file)"]
    lines += [f"{100 * c / samples:5.1f}  {f}" for f, c in own.most_common(top)]
    lines += ["", "total %  function (file), this project's code only"]
    ours = [(f, c) for f, c in total.most_common() if any(
        part in f for part in ("demo_shop", "checkout.py", "api.py", "metrics.py", "app.py",
                               "orders.py", "requestlog.py", "resilience.py", "observe.py",
                               "locustfile.py", "classify.py", "pages.py", "timeline.py",
                               "banner.py", "locust_bench.py"))]
    lines += [f"{100 * c / samples:5.1f}  {f}" for f, c in ours[:top]]
    return "\n".join(lines) + "\n"


def main() -> int:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed: run `make setup`", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="cc-profile-"))
    with own_stack() as stack:
        shop = next(p for p in stack.processes() if p.name == "shop")
        raw = OUT / "shop.collapsed"
        recorders = [subprocess.Popen(
            [spy, "record", "--pid", str(shop.pid), "--subprocesses", "--duration",
             str(SECONDS), "--rate", "200", "--format", fmt, "--output", str(path),
             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for fmt, path in (("raw", raw), ("flamegraph", OUT / "shop.svg"))]
        # The load generator is profiled in the same run: what a journey costs inside
        # Locust (classifying, parsing pages, the timeline, the evidence, the status watch).
        load_raw = OUT / "locust.collapsed"
        figures, _ = locust(stack, "Buyer", 40, SECONDS, scratch / "load", wrap=[
            spy, "record", "--rate", "200", "--format", "raw", "--output", str(load_raw),
            "--nonblocking", "--"])
        for recorder in recorders:
            recorder.wait(timeout=120)
    shutil.rmtree(scratch, ignore_errors=True)
    head = (f"{figures['checkouts']} checkouts, {figures['rps']:.0f} req/s, p95 "
            f"{figures['p95_ms']:.0f} ms\n")
    for name, collapsed in (("shop", raw), ("locust", load_raw)):
        text = head + summary(collapsed)
        (OUT / f"{name}.txt").write_text(text)
        print(f"== {name}\n{text}")
    print(f"flame graph: {OUT / 'shop.svg'}; summaries: {OUT}/shop.txt, {OUT}/locust.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
