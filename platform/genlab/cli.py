"""The command line every job shares: `--config PATH`, `--out DIR`, then `key=value` overrides."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

from genlab.config import load_config
from genlab.errors import GenlabError
from genlab.workspace import in_workspace

ConfigT = TypeVar("ConfigT")


def parse_job_args(description: str, default_config: str | None, argv: list[str] | None = None,
                   extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """Return parsed args: `config` (path or None), `out` (absolute Path, relative ones under the workspace
    `genlab.workspace.workspace_root()`; or None), `overrides` (list[str])."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=default_config, help="YAML config file")
    parser.add_argument("--out", type=in_workspace, default=None, help="directory for summary.json and reports")
    if extra is not None:
        extra(parser)
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. classifier.epochs=3")
    return parser.parse_args(argv)


def run_job(main: Callable[[], int | None]) -> None:
    """Run a job's `main`; a GenlabError is printed as one line and exits with its code."""
    try:
        code = main() or 0
    except GenlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


def run_config_job(doc: str, config_cls: type[ConfigT], work: Callable[[ConfigT, Path], dict[str, Any]], *,
                   default_config: str, default_out: str) -> None:
    """Run a job that is one library call: parse the command line (`doc`'s first line is its description),
    load `config_cls`, call `work(cfg, out_dir)`; exit 0, or 1 when the summary it returns has
    `all_finished` false, or the code of a GenlabError (2 for a bad config)."""
    def main() -> int:
        args = parse_job_args(doc.splitlines()[0], default_config=default_config)
        summary = work(load_config(config_cls, args.config, args.overrides), args.out or in_workspace(default_out))
        return 0 if summary.get("all_finished", True) else 1

    run_job(main)
