"""Run a command (the e2e suite) against a natively started stack: `make test` without Docker.

    python services/e2e/harness/native_stack.py [--ready-timeout S] [--keep] -- COMMAND...

Starts the forward-protocol receiver (the test double for fluentd) writing JSON lines into a
temporary log folder, starts the classifier (``python -m classifier``, a real uvicorn process)
shipping its records there, waits for ``/health/ready`` the way the compose healthcheck does, runs
COMMAND with ``E2E_BASE_URL`` and ``E2E_LOG_DIR`` set, then stops both, also when COMMAND fails or
the run is interrupted. Exits with COMMAND's status.

The operator's ``CLASSIFIER_*`` variables reach the classifier (``CLASSIFIER_MODEL_DIR`` serves
another model), except the four this composition fixes, as ``compose.yml`` fixes them: host, port
and the fluentd address. The folder with the classifier's output and the records is kept (and
named) when COMMAND fails, or always with ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType

# Run as a script, this folder (not services/e2e) is on sys.path; `harness.` imports need its
# parent, as they do for `python -m harness.forward_receiver`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.processes import LOOPBACK, NotReadyError, free_port, stop, wait_for, wait_http_ok

E2E_DIR = Path(__file__).resolve().parents[1]
CLASSIFIER_SRC = E2E_DIR.parent / "classifier" / "src"

#: The variables compose.yml fixes for the classifier; the harness fixes the same ones.
FIXED_BY_COMPOSITION = (
    "CLASSIFIER_HOST",
    "CLASSIFIER_PORT",
    "CLASSIFIER_FLUENTD_HOST",
    "CLASSIFIER_FLUENTD_PORT",
)
RECEIVER_LISTENING = re.compile(r"listening on \S+?:(\d+)")
STOP_GRACE_SECONDS = 35.0  # the classifier drains for up to 30 s (timeout_graceful_shutdown)
OUTPUT_TAIL_LINES = 40
INTERRUPTED = 130  # the shell's status for a run ended by SIGINT


class StackError(RuntimeError):
    """The stack could not be started; the message says which part and why."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached the harness: tear down, then exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def say(message: str) -> None:
    print(f"native-stack: {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = OUTPUT_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def with_pythonpath(env: Mapping[str, str], *folders: Path) -> dict[str, str]:
    merged = dict(env)
    parts = [str(folder) for folder in folders]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    merged["PYTHONPATH"] = os.pathsep.join(parts)
    return merged


class Service:
    """One background process of the stack, its output in a file, stopped by SIGTERM."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], output: Path
    ) -> None:
        self.name = name
        self.output = output
        with output.open("wb") as sink:
            # A session of its own: Ctrl-C reaches only the command under test, and the harness
            # then stops the services itself, in order.
            self.process = subprocess.Popen(
                argv,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def exited(self) -> int | None:
        return self.process.poll()

    def stop(self, grace: float) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; return the exit status."""
        started = time.monotonic()
        status = stop(self.process, grace)
        if status == -signal.SIGKILL and time.monotonic() - started >= grace:
            say(f"{self.name} still running {grace:g} s after SIGTERM; killed it")
        return status


@contextmanager
def running(service: Service, grace: float) -> Iterator[Service]:
    try:
        yield service
    finally:
        say(f"stopping {service.name} (pid {service.process.pid})")
        status = service.stop(grace)
        if status in (0, -signal.SIGTERM):
            say(f"{service.name} stopped (status {status})")
        else:
            say(f"{service.name} stopped with status {status}; its last output:")
            print(tail(service.output), file=sys.stderr, flush=True)


def start_receiver(work: Path, log_dir: Path, timeout: float) -> tuple[Service, int]:
    """The forward receiver on a free loopback port; returns it once it says it listens."""
    say(f"starting the forward receiver (test double for fluentd), JSON lines into {log_dir}")
    receiver = Service(
        "forward receiver",
        [
            sys.executable,
            "-m",
            "harness.forward_receiver",
            "--host",
            LOOPBACK,
            "--port",
            "0",
            "--log-dir",
            str(log_dir),
        ],
        with_pythonpath({**os.environ, "PYTHONUNBUFFERED": "1"}, E2E_DIR),
        work / "receiver.out",
    )
    found = None
    try:
        found = wait_for(
            lambda: RECEIVER_LISTENING.search(tail(receiver.output)),
            what="the forward receiver",
            timeout=timeout,
            process=receiver.process,
            interval=0.05,
        )
    except NotReadyError as exc:
        raise StackError(f"{exc}; its output:\n" + tail(receiver.output)) from None
    finally:
        if receiver.exited() is None and not found:
            receiver.stop(grace=5)  # not listening in time, or interrupted meanwhile
    port = int(found.group(1))
    say(f"forward receiver listening on {LOOPBACK}:{port}")
    return receiver, port


def classifier_env(port: int, fluentd_port: int, data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in FIXED_BY_COMPOSITION}
    # Jobs, uploads and results of this run, kept with its records (compose has a volume).
    env.setdefault("CLASSIFIER_DATA_DIR", str(data_dir))
    env.update(
        CLASSIFIER_HOST=LOOPBACK,
        CLASSIFIER_PORT=str(port),
        CLASSIFIER_FLUENTD_HOST=LOOPBACK,
        CLASSIFIER_FLUENTD_PORT=str(fluentd_port),
        PYTHONUNBUFFERED="1",
    )
    # The records go to the receiver; one JSON line per request on stdout would only bury the
    # start-up lines that explain a failure.
    env.setdefault("CLASSIFIER_ACCESS_LOG_STDOUT", "false")
    return with_pythonpath(env, CLASSIFIER_SRC)


def start_classifier(work: Path, fluentd_port: int) -> tuple[Service, str]:
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    say(f"starting the classifier (python -m classifier) on {url}, shipping to :{fluentd_port}")
    classifier = Service(
        "classifier",
        [sys.executable, "-m", "classifier"],
        classifier_env(port, fluentd_port, work / "data"),
        work / "classifier.out",
    )
    return classifier, url


def wait_ready(classifier: Service, url: str, timeout: float) -> None:
    """GET /health/ready until it is 2xx, as the compose healthcheck's urllib one-liner does."""
    say(f"waiting up to {timeout:g} s for {url}/health/ready")
    started = time.monotonic()
    try:
        wait_http_ok(
            f"{url}/health/ready",
            what="the classifier",
            timeout=timeout,
            process=classifier.process,
        )
    except NotReadyError as exc:
        if classifier.exited() is not None:
            # Its output follows once the harness has stopped everything (see running()).
            raise StackError(str(exc)) from None
        raise StackError(f"{exc}; its output:\n" + tail(classifier.output)) from None
    say(f"classifier ready after {time.monotonic() - started:.1f} s")


def run_command(command: Sequence[str], env: Mapping[str, str]) -> int:
    say(f"running: {shlex.join(command)}")
    try:
        process = subprocess.Popen(command, env=dict(env))
    except OSError as exc:
        say(f"cannot run {command[0]}: {exc}")
        return 127  # the shell's status for a command that cannot be run
    try:
        status = process.wait()
        return 128 - status if status < 0 else status  # killed by signal N: 128 + N, as sh says
    except Interrupted as exc:
        # Ctrl-C reached the command too (same process group); a SIGTERM was meant for the
        # harness alone, so pass it on. Either way the command may finish its report first.
        if exc.signum == signal.SIGTERM:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # Once: a second Ctrl-C must not cut the (bounded) teardown short and leave processes behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted(signum)


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        raise SystemExit("usage: native_stack.py [--ready-timeout S] [--keep] -- COMMAND...")
    split = argv.index("--")
    parser = argparse.ArgumentParser(
        prog="native_stack.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        help="seconds the classifier has to become ready (the image's start period: 60)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the folder with the records and outputs"
    )
    return parser.parse_args(argv[:split]), argv[split + 1 :]


def main(argv: Sequence[str]) -> int:
    args, command = parse_args(argv)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    work = Path(tempfile.mkdtemp(prefix="native-stack-"))
    log_dir = work / "logs"
    log_dir.mkdir()
    status = 1
    try:
        with ExitStack() as stack:
            receiver, fluentd_port = start_receiver(work, log_dir, timeout=15)
            stack.enter_context(running(receiver, grace=5))
            classifier, url = start_classifier(work, fluentd_port)
            # Stopped before the receiver, so its shutdown records still have somewhere to go.
            stack.enter_context(running(classifier, grace=STOP_GRACE_SECONDS))
            wait_ready(classifier, url, args.ready_timeout)
            env = with_pythonpath(
                {**os.environ, "E2E_BASE_URL": url, "E2E_LOG_DIR": str(log_dir)}, CLASSIFIER_SRC
            )
            status = run_command(command, env)
            say(f"command exited with status {status}")
            if status != 0:
                say(f"the classifier's last output ({work / 'classifier.out'}):")
                print(tail(classifier.output), file=sys.stderr, flush=True)
    except StackError as exc:
        say(str(exc))
        status = 1
    except Interrupted as exc:
        say(f"interrupted ({exc}); stopped everything")
        status = INTERRUPTED
    finally:
        if status == 0 and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"records and outputs kept in {work}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
