"""The ``familylog-tray`` command: parse the arguments and hand over to the right part.

Each command runs in ``app.cli`` (exit codes: ``app.exit_codes``), the tray in
``app.ui.launch``:

- ``--version``: print the version.
- ``--start-at-login on|off|status``: no app needed (``app.cli.start_at_login``).
- ``--show`` / ``--logs`` / ``--process-now``: forwarded to the app running on this home
  when there is one (``app.cli.running_app``: the tray's single-instance channel, or a
  headless app's API); otherwise ``--process-now`` runs once headless
  (``app.cli.process_now``) and the others start the tray with that window open. One app
  per home (``app.home_lock``): a second ``--headless`` or tray is refused, naming the first.
- ``--load KEY [--ctx N]`` / ``--unload KEY|all``: forwarded to the running tray, which
  answers when the load is done, else to a ``--headless`` app's API; with none running
  they say so and exit 3, no GUI starts (``app.cli.load_unload``).
- ``--rescan``: the running app reads its model folders again and says what changed
  (``app.cli.rescan``); exit 3 when no app runs.
- ``--ps [--json]``: the running app's loaded models, asked through its API
  (``GET /api/v0/ps``); "no models loaded" when none, exit 3 when no app answers
  (``app.cli.ps``).
- ``--download REPO [--file NAME | --quant QUANT]``: the running app gets a model from the
  Hugging Face Hub, through its API (LM Studio's ``POST /api/v1/models/download``); the
  progress is printed until the catalogue lists it; exit 3 when no app answers
  (``app.cli.download``).
- ``--benchmark [--model KEY] [--runs N] [--against URL] [--against-model NAME] [--json
  FILE]``: the speed benchmark against the running app's API (``app.cli.benchmark``).
- ``--check [KEY|all] [--json]``: check my models (load, chat, image, embedding, unload;
  then FamilyLog's pair) through the running app's API (``app.cli.check``).
- ``--headless``: the core without Qt until SIGINT/SIGTERM (``app.cli.headless``).
- ``--rpc-worker [--host H] [--port P]``: share this GPU with other machines (llama.cpp's
  ggml-rpc-server, supervised) until SIGINT/SIGTERM (``app.cli.rpc_worker``).
- no arguments (or ``--autostart``): the tray app (``app.ui.launch``).
"""

from __future__ import annotations

import argparse
import sys

from app import __version__
from app.exit_codes import ExitCode


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="familylog-tray",
        description="A system-tray manager for llama-server, a drop-in for LM Studio.",
    )
    p.add_argument("--version", action="version", version=f"familylog-tray {__version__}")
    p.add_argument("--headless", action="store_true", help="run the core without Qt")
    p.add_argument("--show", action="store_true", help="open the models window")
    p.add_argument("--logs", action="store_true", help="open the log window")
    p.add_argument("--process-now", action="store_true", help="start a FamilyLog run")
    p.add_argument("--autostart", action="store_true", help="started at login: stay quiet")
    p.add_argument(
        "--load",
        metavar="KEY",
        help="ask the running app to load this model (its key or alias) and wait until it is",
    )
    p.add_argument(
        "--ctx",
        metavar="N",
        type=_positive_int,
        help="with --load: the context length in tokens (default: LLAMA_CTX_SIZE)",
    )
    p.add_argument(
        "--unload",
        metavar="KEY|all",
        help="ask the running app to unload this model, or every model with 'all'",
    )
    _add_download_args(p)
    p.add_argument(
        "--rescan",
        action="store_true",
        help="ask the running app to read its model folders again and say what changed",
    )
    _add_benchmark_args(p)
    _add_rpc_worker_args(p)
    p.add_argument(
        "--check",
        metavar="KEY|all",
        nargs="?",
        const="",
        help="check models through the running app: load each, ask it, unload it, then "
        "FamilyLog's vision → LLM switch (default: FamilyLog's two models; 'all': every model)",
    )
    p.add_argument(
        "--ps",
        action="store_true",
        help="list the models the running app has loaded (asks its API)",
    )
    p.add_argument(
        "--start-at-login",
        choices=["on", "off", "status"],
        help="turn starting at login on or off, or show its state",
    )
    return p


def _add_download_args(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("getting models")
    d.add_argument(
        "--download",
        metavar="REPO",
        help="ask the running app to get a model from the Hugging Face Hub (publisher/name, "
        "publisher/name:QUANT or a huggingface.co link) and wait until it is listed",
    )
    which = d.add_mutually_exclusive_group()
    which.add_argument(
        "--file", metavar="NAME", help="with --download: this file of the repository"
    )
    which.add_argument(
        "--quant", metavar="QUANT", help="with --download: this quantization (default: Q4_K_M)"
    )


def _add_rpc_worker_args(p: argparse.ArgumentParser) -> None:
    w = p.add_argument_group("sharing this GPU (llama.cpp RPC; the protocol has no authentication)")
    w.add_argument(
        "--rpc-worker",
        action="store_true",
        help="share this GPU with other machines: run llama.cpp's ggml-rpc-server until "
        "Ctrl+C (a network address needs RPC_WORKER_ALLOW_REMOTE=true)",
    )
    w.add_argument(
        "--host", metavar="H", help="with --rpc-worker: the address (default RPC_WORKER_HOST)"
    )
    w.add_argument(
        "--port",
        metavar="P",
        type=_port,
        help="with --rpc-worker: the port (default RPC_WORKER_PORT, 50052)",
    )


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (1-65535)")
    return value


def _add_benchmark_args(p: argparse.ArgumentParser) -> None:
    b = p.add_argument_group("benchmark")
    b.add_argument(
        "--benchmark",
        action="store_true",
        help="run the speed benchmark against the running app's model and print the table",
    )
    b.add_argument(
        "--model", metavar="KEY", help="with --benchmark: the model (default: the loaded one)"
    )
    b.add_argument(
        "--runs",
        metavar="N",
        type=_positive_int,
        default=3,
        help="runs of the prompt set (default 3)",
    )
    b.add_argument(
        "--against",
        metavar="URL",
        help="also run it against this OpenAI-compatible server, e.g. http://127.0.0.1:1235/v1",
    )
    b.add_argument(
        "--against-model",
        metavar="NAME",
        help="the model to ask --against for (default: the first it lists)",
    )
    b.add_argument(
        "--json",
        metavar="FILE",
        nargs="?",
        const="-",
        help="also write the results as JSON to FILE (alone: print JSON instead of the table; "
        "with --ps or --check: print JSON)",
    )
    b.add_argument(
        "--prompt-tokens", metavar="N", type=_positive_int, default=2000, help=argparse.SUPPRESS
    )
    b.add_argument(
        "--gen-tokens", metavar="N", type=_positive_int, default=256, help=argparse.SUPPRESS
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not above 0")
    return value


def _any_of(args: argparse.Namespace, *names: str) -> bool:
    """True if any of the options ``names`` is given: a flag set, or a value (even empty)."""
    return any(getattr(args, n) is not None and getattr(args, n) is not False for n in names)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.load is not None and args.unload is not None:
        p.error("--load and --unload cannot be combined; run them one after the other")
    if args.ctx is not None and args.load is None:
        p.error("--ctx goes with --load")
    checking = args.check is not None
    if args.json is not None and not (args.ps or args.benchmark or checking):
        p.error("--json goes with --ps, --benchmark or --check")
    if (args.ps or checking) and args.json not in (None, "-"):
        p.error(f"with {'--ps' if args.ps else '--check'}, --json takes no file: it prints JSON")
    if checking and _any_of(args, "ps", "headless", "benchmark", "load", "unload", "download"):
        p.error("--check asks the running app; it goes alone (or with --json)")
    if args.ps and _any_of(args, "headless", "benchmark", "load", "unload"):
        p.error("--ps asks the running app; it goes alone (or with --json)")
    if (args.file or args.quant) and args.download is None:
        p.error("--file and --quant go with --download")
    if args.download is not None and _any_of(args, "headless", "ps", "benchmark", "load", "unload"):
        p.error("--download asks the running app; it goes alone (with --file or --quant)")
    if (args.host is not None or args.port is not None) and not args.rpc_worker:
        p.error("--host and --port go with --rpc-worker")
    if args.rpc_worker and _any_of(
        args, "headless", "ps", "benchmark", "download", "load", "unload"
    ):
        p.error("--rpc-worker runs the worker alone (with --host and --port)")
    if (args.load is not None or args.unload is not None) and args.headless:
        p.error("--load and --unload ask the running tray app; they do not go with --headless")
    return args


def forwarded_verb(args: argparse.Namespace) -> str | None:
    if args.process_now:
        return "process-now"
    if args.logs:
        return "logs"
    if args.show:
        return "show"
    return None


def opens_the_tray(args: argparse.Namespace) -> bool:
    """True when this launch runs the tray app (no command that answers and exits)."""
    return not _any_of(
        args,
        *("headless", "rpc_worker", "process_now", "benchmark", "ps", "rescan", "check"),
        *("load", "unload", "download"),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    from app.paths import AppHomeError, AppPaths

    if args.start_at_login:
        from app.cli.start_at_login import start_at_login

        return start_at_login(args.start_at_login)

    try:
        paths = AppPaths.resolve().ensure()
    except AppHomeError as e:
        print(f"familylog-tray: {e}", file=sys.stderr)
        return ExitCode.USAGE

    verb = forwarded_verb(args)
    if verb and not args.headless and (verb == "process-now" or opens_the_tray(args)):
        from app.ui.single_instance import forward

        reply = forward(verb, paths)
        if reply is not None:
            print(reply)
            return ExitCode.REFUSED if reply.startswith("error:") else ExitCode.OK

    if opens_the_tray(args):
        # The settings (pydantic: about 60 % of the imports before the icon) are read once
        # the icon shows.
        from app.ui.launch import run_gui

        return run_gui(args, paths)

    from app.core.logs.app_logging import setup_logging
    from app.settings_load import SettingsError, load_settings, settings_warnings

    try:
        settings = load_settings(paths)
    except SettingsError as e:
        print(f"familylog-tray: {e}", file=sys.stderr)
        return ExitCode.USAGE
    if not args.headless:  # a headless app logs them (its console shows its log)
        for warning in settings_warnings(paths):
            print(f"familylog-tray: warning: {warning}", file=sys.stderr)

    if args.load is not None or args.unload is not None:
        from app.cli.load_unload import model_command

        return model_command(args, settings, paths)

    if args.download is not None:
        from app.cli.download import download_command

        return download_command(settings, args.download, file=args.file, quant=args.quant)

    if args.rescan:
        from app.cli.rescan import rescan_command

        return rescan_command(settings, paths)

    if args.ps:
        from app.cli.ps import ps_command

        return ps_command(settings, as_json=args.json is not None)

    if args.benchmark:
        from app.cli.benchmark import run as run_benchmark

        return run_benchmark(args, settings, paths)

    if args.check is not None:
        from app.cli.check import check_command

        return check_command(settings, paths, args.check, as_json=args.json is not None)

    if verb and not args.headless:  # not to a tray (asked above): to a headless app's API
        from app.cli.running_app import forward_verb

        code = forward_verb(verb, settings, paths)
        if code is not None:
            return code

    setup_logging(
        paths.app_log_file, max_bytes=settings.LOG_MAX_BYTES, backups=settings.LOG_BACKUPS
    )
    import asyncio  # not before the tray's icon: about 10 % of what it imports

    if args.process_now and not args.headless:
        from app.cli.process_now import run_once_headless

        return asyncio.run(run_once_headless(settings, paths))

    if args.rpc_worker:
        from app.cli.rpc_worker import run_rpc_worker

        return asyncio.run(run_rpc_worker(settings, paths, host=args.host, port=args.port))

    from app.cli.headless import run_headless

    return asyncio.run(run_headless(settings, paths))


if __name__ == "__main__":
    sys.exit(main())
