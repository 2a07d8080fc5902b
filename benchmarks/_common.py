"""What every benchmark script shares: the data it measures on and how it records a result.

Every script runs from the repository root as ``python -m benchmarks.NAME`` and imports this module
as ``benchmarks._common``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

import drkit
from drkit.data import ImageDataset

Config = TypeVar("Config")  # a dataclass: a harness profile, a TrainConfig


def load_data(samples: int) -> ImageDataset:
    """The first ``samples`` Fashion-MNIST training images, or scikit-learn's digits if not installed."""
    try:
        ds = drkit.load_dataset("fashion-mnist")
    except drkit.DataError:
        print("Fashion-MNIST not found (apt-get install dataset-fashion-mnist): using sklearn digits",
              file=sys.stderr)
        ds = drkit.load_dataset("digits")
    n = min(samples, len(ds))
    return ds.subset(np.arange(n), name=f"{ds.name}[:{n}]")  # type: ignore[attr-defined]


def environment(**extra: Any) -> dict[str, Any]:
    """Versions, cores and load of this machine, so that a reader can judge a number."""
    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
            "drkit": drkit.__version__, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "loadavg_1_5_15_at_end": list(os.getloadavg()), **extra}


def command_line() -> str:
    """The command that started this process, in the ``python -m benchmarks.NAME ...`` form it was run in."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    script = f"-m {spec.name}" if spec is not None else sys.argv[0]
    return " ".join(["python", script, *sys.argv[1:]])


def add_harness_args(parser: argparse.ArgumentParser, profiles: dict[str, Any], *, quick: str, out: str,
                     example: str) -> None:
    """The options every accuracy harness takes: ``--quick``/``--profile`` (``full`` without either),
    ``--set`` overrides of its fields (``example`` shows some), ``--out``, ``--device``, ``--report``."""
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--profile", choices=sorted(profiles), help="explicit profile (overrides --quick)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a profile field (a nested one as FIELD.KEY), e.g. {example}")
    parser.add_argument("--out", type=Path, help=f"cache and run directory (default: {out})")
    parser.add_argument("--device", help="cuda or cpu (default: best available)")
    parser.add_argument("--report", type=Path,
                        help="write the Markdown report here (an existing file keeps its '## Discussion' section)")
    parser.add_argument("-q", "--quiet", action="store_true")


def harness_profile(args: argparse.Namespace, profiles: dict[str, Config]) -> tuple[str, Config]:
    """The profile ``add_harness_args``'s options name, and it with their ``--set`` overrides applied."""
    name = args.profile or ("quick" if args.quick else "full")
    return name, override(profiles[name], args.set)


def harness_command(module: str, profile: str, assignments: Sequence[str], out: Path | None) -> str:
    """The command a harness's report names: ``python -m MODULE``, its profile (``full`` is the default),
    ``--set`` overrides and ``--out``."""
    flag = {"full": "", "quick": " --quick"}.get(profile, f" --profile {profile}")
    flag += "".join(f" --set {a}" for a in assignments) + (f" --out {out}" if out else "")
    return f"python -m {module}{flag}"


def record(benchmark: str, settings: dict[str, Any], path: Path | None, **fields: Any) -> dict[str, Any]:
    """The result with its exact command and settings; written as JSON to ``path`` when given."""
    result = {"benchmark": benchmark, "command": command_line(),
              "settings": {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}, **fields}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def cached_arm(root: Path, name: str, make: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
    """``root/arms/<name>.json`` if an earlier call wrote it, else ``make()`` (a JSON-able mapping, such
    as ``train_run``'s result) timed (``arm_seconds``) and saved there: reruns of a long benchmark skip
    what is done. Logs ``arm NAME`` only when it computes one."""
    path = root / "arms" / f"{name}.json"
    if not path.is_file():
        logging.getLogger("benchmarks").info("arm %s", name)
        t0 = time.perf_counter()
        result = dict(make())
        result["arm_seconds"] = time.perf_counter() - t0
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return json.loads(path.read_text())


DISCUSSION = "\n## Discussion"  # a report file keeps what follows this heading when it is rewritten


def write_report(path: Path, body: str) -> None:
    """Write a generated Markdown report to ``path``, keeping the hand-written part of the file it
    replaces (from ``## Discussion`` on): a rerun refreshes the numbers, not the prose."""
    old = path.read_text() if path.is_file() else ""
    path.write_text(body + (old[old.index(DISCUSSION):] if DISCUSSION in old else ""))


def parse_field(config: Any, key: str, text: str, *, flag: str = "--set") -> Any:
    """``text`` as a value of dataclass ``config``'s field ``key``, typed by the field's current value:
    numbers, ``true``/``false``, ``none``, or a comma-separated list for tuples (``students=a,b``); a
    field that is None now is parsed by its declared type. Bad input exits naming ``flag``."""
    declared = {f.name: str(f.type) for f in dataclasses.fields(config)}
    if key not in declared:
        raise SystemExit(f"{flag} {key}={text}: {key!r} is not one of {', '.join(declared)}")
    old = getattr(config, key)
    try:
        if text.lower() == "none":
            return None
        if isinstance(old, tuple):
            return tuple(type(old[0])(v) for v in text.split(",")) if old else tuple(text.split(","))
        if isinstance(old, bool) or (old is None and declared[key].startswith("bool")):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(old, (int, float)):
            return type(old)(text)
        if old is None:  # an optional field (train_samples, limited_temperature, ...): its declared type
            kind = declared[key]
            return int(text) if kind.startswith("int") else float(text) if kind.startswith("float") else text
        return text
    except ValueError:
        raise SystemExit(f"{flag} {key}={text}: {text!r} is not a valid {declared[key]}") from None


def override(config: Config, assignments: Sequence[str], *, flag: str = "--set") -> Config:
    """``config`` (a dataclass) with ``KEY=VALUE`` assignments applied (a harness's ``--set``), each
    value parsed by :func:`parse_field`; ``KEY`` may name a field of a nested dataclass
    (``generator.train_steps=3000``)."""
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} {item!r}: expected KEY=VALUE")
        config = _assign(config, key.split("."), text, flag=flag, item=item)
    return config


def _assign(config: Config, path: list[str], text: str, *, flag: str, item: str) -> Config:
    head, *rest = path
    if not rest:
        return dataclasses.replace(config, **{head: parse_field(config, head, text, flag=flag)})
    inner = getattr(config, head, None) if head in {f.name for f in dataclasses.fields(config)} else None
    if not dataclasses.is_dataclass(inner):
        raise SystemExit(f"{flag} {item!r}: {head!r} is not a nested config of {type(config).__name__}")
    return dataclasses.replace(config, **{head: _assign(inner, rest, text, flag=flag, item=item)})
