"""The ``oarl`` command line: ``oarl COMMAND [--help]``. Each command is a module with ``main(argv) -> int``.

A thin shell over the library (``oarl.core``, ``oarl.batch``, ``oarl.integrations``) and the lab
(``oarl.lab``): what a command does lives there. Every command but ``scorers`` runs the lab; without the lab
extra it prints the ``pip install "oarl[lab]"`` line and exits 2 (:class:`oarl.utils.extras.MissingExtra`).
The commands are imported by name when run, and a command imports most of what it runs inside its
functions: the one place in oarl where function-local imports are the rule (tests/test_layers.py allows
them here only), so that ``oarl --help`` and ``oarl COMMAND --help`` start in a fraction of a second
instead of importing torch, TRL and the lab first.
"""

from __future__ import annotations

import importlib
import sys

from oarl.utils.extras import MissingExtra

# name -> (module, one-line help). Imported lazily so `oarl --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "oarl.cli.demo",
        "GRPO vs OAR-P vs entropy vs oracle credit on the flag task (offline, CPU, minutes)",
    ),
    "train": ("oarl.cli.train", "any run from a YAML config (OARConfig fields + task fields)"),
    "eval": ("oarl.cli.eval_cmd", "pass@1 / pass@k of a local model on a math or task dataset"),
    "attribute": (
        "oarl.cli.attribute",
        "token-credit heatmaps (HTML + PNG) for one or more completions",
    ),
    "oracle-eval": (
        "oarl.cli.oracle_eval",
        "recall / precision / AUROC of scorers vs the oracle causal tokens",
    ),
    "fidelity": (
        "oarl.cli.fidelity",
        "cheap scorers (OAR-G and variants) vs exact OAR-P: agreement and cost",
    ),
    "study": ("oarl.cli.study", "seeds x arms x conditions on a testbed task, with CIs and paired tests"),
    "warmstart": ("oarl.cli.warmstart", "train, check and ship the flag task's warm-start checkpoints"),
    "plot": ("oarl.cli.plot", "training curves of several runs on one figure"),
    "bench": ("oarl.cli.bench", "scorer and training-step cost: oarl vs naive, OAR vs GRPO"),
    "scorers": (
        "oarl.cli.scorers",
        "the registered scorers: family, status, cost, needs, options (docs/scorers.md)",
    ),
    "score-demo": ("oarl.cli.score_demo", "score one random sequence with every scorer on a tiny model"),
    "model": (
        "oarl.cli.model",
        "real pretrained models by short name: fetch (make setup runs it), list, path",
    ),
    "gpu-check": ("oarl.cli.gpu_check", "GPU: scorers in bf16 vs float32; step times of each arm (vLLM)"),
}


def usage() -> str:
    lines = ["usage: oarl COMMAND [options]   (oarl COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:12s} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += [
        "",
        "  --version    print the version",
        "",
        'every command but scorers runs the lab: pip install "oarl[lab]"',
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from oarl import __version__

        print(__version__)
        return 0
    if argv[0] not in COMMANDS:
        print(f"oarl: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    from oarl.utils.threads import prefer_passive_openmp

    prefer_passive_openmp()  # before any command imports torch
    from oarl.utils.offline import hub_offline_unless_allowed

    hub_offline_unless_allowed()  # no run-time downloads unless OARL_ALLOW_DOWNLOAD=1 (before transformers)
    try:
        module = importlib.import_module(COMMANDS[argv[0]][0])
        return int(module.main(argv[1:]) or 0)
    except MissingExtra as e:  # the lab or math extra is not installed: one line, the pip command in it
        print(f"oarl {argv[0]}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside a clean stop point: one line, not a traceback (130 = 128 + 2)
        from oarl.utils.interrupt import interrupted_message

        print(interrupted_message(argv, getattr(module, "RESUME_HINT", None)), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
