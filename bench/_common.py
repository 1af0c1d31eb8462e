"""Shared machinery of the benchmark scripts: the emulator in a child process, statistics, tables.

Why a child process: azure-identity's ``AzurePipelinesCredential`` makes its Azure DevOps call
with ``requests``, synchronously, on the event loop. An emulator served by that same loop could
never answer it, and one in a thread of the same process would compete for the GIL with the code
being measured. So :class:`EmulatorProcess` runs :class:`agent.testing.Emulator` in a child
(``python bench/_common.py --serve``) and drives it over a JSON-lines pipe: one request per line
on the child's stdin, one answer per line on its stdout. The child stops when its stdin closes,
so it never outlives the benchmark.

Traffic stays on 127.0.0.1: :func:`isolate_environment` removes proxy and Azure variables and
points ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE`` at the emulator's throwaway CA.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Self

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
# Bytecode of the benchmarks' long-running children (emulator, servers): compiled once, kept.
CHILD_PYCACHE = Path(tempfile.gettempdir()) / f"azauth-bench-pycache-{os.getuid()}"
# Seconds any single control exchange with the child may take (start-up included).
CONTROL_TIMEOUT = 30.0

# Variables that could send traffic elsewhere or change what either credential does.
_PROXY_NAMES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
# Trust settings: removed so that both sides trust exactly the CA the benchmark names.
_TRUST_NAMES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_CLEARED_PREFIXES = ("AZURE_", "SYSTEM_", "AZURESUBSCRIPTION_", "ARM_", "IDENTITY_", "MSI_")

# The service connection every benchmark registers with the emulator.
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "11111111-2222-3333-4444-555555555555"
SC = "00000000-aaaa-bbbb-cccc-000000000001"
# The floor of every process benchmark: this interpreter starting and doing nothing.
BASELINE = (sys.executable, "-c", "pass")
BASELINE_NAME = "python -c pass"


# ------------------------------------------------------------------------------------------------
# The emulator, in a child process


@dataclass(frozen=True)
class Counts:
    """Requests the emulator served, per endpoint."""

    oidc: int
    token: int

    @property
    def total(self) -> int:
        """OIDC plus Entra requests."""
        return self.oidc + self.token

    def __str__(self) -> str:
        return f"{self.total} ({self.oidc}+{self.token})"


class EmulatorProcess:
    """An :class:`agent.testing.Emulator` serving from a child process; start with :meth:`start`.

    Attributes mirror the emulator's: ``url``, ``authority``, ``oidc_request_uri``,
    ``system_access_token``, ``ca_file``.
    """

    def __init__(self, process: asyncio.subprocess.Process, hello: Mapping[str, Any]) -> None:
        self._process = process
        self._lock = asyncio.Lock()
        self.url: str = hello["url"]
        self.authority: str = hello["authority"]
        self.oidc_request_uri: str = hello["oidc_request_uri"]
        self.system_access_token: str = hello["system_access_token"]
        self.ca_file: str | None = hello["ca_file"]

    @classmethod
    async def start(cls, *, latency: float, tls: bool = True) -> Self:
        """Start the child; return once it serves (or raise RuntimeError)."""
        args = [sys.executable, str(SCRIPT), "--serve", f"--latency={latency}"]
        if tls:
            args.append("--tls")
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=_child_environment(),
            cwd=REPO,
        )
        try:
            hello = await cls._read(process)
        except BaseException:
            await _stop(process)
            raise
        return cls(process, hello)

    @staticmethod
    async def _read(process: asyncio.subprocess.Process) -> dict[str, Any]:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), CONTROL_TIMEOUT)
        if not line:
            code = await asyncio.wait_for(process.wait(), CONTROL_TIMEOUT)
            raise RuntimeError(f"the emulator process exited with status {code}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"emulator control: {answer['error']}")
        return answer

    async def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        assert self._process.stdin is not None
        async with self._lock:
            self._process.stdin.write(json.dumps({"op": op, **kwargs}).encode() + b"\n")
            await asyncio.wait_for(self._process.stdin.drain(), CONTROL_TIMEOUT)
            return await self._read(self._process)

    async def add_connection(
        self, service_connection_id: str, tenant_id: str, client_id: str
    ) -> None:
        """Register a working service connection (``Emulator.add_connection``)."""
        await self._call("add_connection", args=[service_connection_id, tenant_id, client_id])

    async def counts(self) -> Counts:
        """Requests served per endpoint since the last :meth:`reset_counts`."""
        answer = await self._call("counts")
        return Counts(oidc=answer["oidc"], token=answer["token"])

    async def cpu_time(self) -> float:
        """CPU seconds the emulator process has used so far (user + system)."""
        answer = await self._call("cpu_time")
        return float(answer["cpu_time"])

    async def first_request_time(self) -> float | None:
        """Wall-clock arrival (``time.time()``) of the first request since the last reset."""
        answer = await self._call("first_request")
        return None if answer["time"] is None else float(answer["time"])

    async def reset_counts(self) -> None:
        """Zero the counters and forget recorded requests and issued tokens."""
        await self._call("reset_counts")

    def client_environment(self) -> dict[str, str]:
        """Variables both credentials need to reach (and trust) this emulator."""
        env = {"SYSTEM_OIDCREQUESTURI": self.oidc_request_uri, "NO_PROXY": "127.0.0.1,localhost"}
        if self.ca_file:
            env["SSL_CERT_FILE"] = self.ca_file
            env["REQUESTS_CA_BUNDLE"] = self.ca_file
        return env

    async def close(self) -> None:
        """Close the child's stdin, which stops it; kill it if it does not exit in time."""
        await _stop(self._process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.stdin is not None:
        process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), CONTROL_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()


def _child_environment() -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name.upper() not in _PROXY_NAMES
        and not name.upper().startswith(_CLEARED_PREFIXES)
        # Children run from compiled bytecode, as an installed tool does (a benchmark must not
        # inherit a setting that makes every start recompile the sources).
        and name.upper() != "PYTHONDONTWRITEBYTECODE"
    }
    env.setdefault("PYTHONPYCACHEPREFIX", str(CHILD_PYCACHE))
    # The child imports `agent` from the working tree even when run from elsewhere.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def isolate_environment(extra: Mapping[str, str]) -> None:
    """Remove proxy, CA-trust and Azure variables from this process's environment; set ``extra``."""
    for name in list(os.environ):
        upper = name.upper()
        if upper in _PROXY_NAMES or upper in _TRUST_NAMES or upper.startswith(_CLEARED_PREFIXES):
            del os.environ[name]
    os.environ.update(extra)


def system_ca_bundle() -> Path:
    """A full-size public CA bundle: certifi's (a dependency of requests), else OpenSSL's default."""
    try:
        import certifi  # noqa: PLC0415 - optional

        return Path(certifi.where())
    except ImportError:
        return Path(ssl.get_default_verify_paths().openssl_cafile)


@contextlib.contextmanager
def trusting_full_bundle(extra_ca_file: str) -> Iterator[Path]:
    """Point ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE`` at the system bundle plus ``extra_ca_file``.

    This is what a build agent trusting its system store (plus, here, the emulator's CA) loads.
    The previous values are restored on exit.
    """
    saved = {name: os.environ.get(name) for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")}
    with tempfile.TemporaryDirectory(prefix="azauth-bench-") as directory:
        bundle = Path(directory) / "ca-bundle.pem"
        text = system_ca_bundle().read_text(encoding="ascii", errors="replace").rstrip("\n")
        extra = Path(extra_ca_file).read_text(encoding="ascii")
        bundle.write_text(f"{text}\n{extra}", encoding="ascii")
        os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)
        try:
            yield bundle
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


async def _serve(latency: float, tls: bool) -> None:
    """The child: serve the emulator and answer control lines until stdin closes."""
    from agent.testing.emulator import Emulator  # noqa: PLC0415 - only the child needs it

    emu = Emulator(latency=latency)
    await emu.start(tls=tls)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(payload: Mapping[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    try:
        reply(
            {
                "url": emu.url,
                "authority": emu.authority,
                "oidc_request_uri": emu.oidc_request_uri,
                "system_access_token": emu.system_access_token,
                "ca_file": emu.ca_file,
            }
        )
        # Ends when the parent closes our stdin (or dies).
        while line := await reader.readline():
            request = json.loads(line)
            op = request.get("op")
            if op == "counts":
                reply(dict(emu.counts))
            elif op == "cpu_time":
                reply({"cpu_time": time.process_time()})
            elif op == "first_request":
                reply({"time": min((r.time for r in emu.requests), default=None)})
            elif op == "reset_counts":
                emu.reset_counts()
                reply({"ok": True})
            elif op == "add_connection":
                emu.add_connection(*request["args"])
                reply({"ok": True})
            else:
                reply({"error": f"unknown op {op!r}"})
    finally:
        await emu.close()


# ------------------------------------------------------------------------------------------------
# Process benchmarks: one command per process, timed in turns


def installed_script(name: str, bench: str) -> Path:
    """The console script ``name`` of this interpreter's environment (else on ``PATH``)."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return candidate
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{bench}: {name} is not installed")
    return Path(found)


def process_environment(
    emu: EmulatorProcess,
    work: Path,
    extra: Mapping[str, str],
    *,
    cleared_prefixes: Sequence[str] = (),
) -> dict[str, str]:
    """The environment of a measured process: a pipeline step of the emulator's job.

    Azure, azauth and proxy variables are dropped (and any starting with ``cleared_prefixes``),
    bytecode goes to a private ``PYTHONPYCACHEPREFIX`` under ``work``; ``extra`` is set last.
    """
    prefixes = ("AZAUTH_", "AZURE", "SYSTEM_", "ARM_", *cleared_prefixes)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(prefixes)
        and name.upper()
        not in {"PYTHONDONTWRITEBYTECODE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}
    }
    env.update(
        {
            "HOME": str(work / "home"),
            "AZAUTH_CACHE_DIR": str(work / "cache"),
            "PYTHONPYCACHEPREFIX": str(work / "pycache"),
            "SYSTEM_OIDCREQUESTURI": emu.oidc_request_uri,
            "SYSTEM_ACCESSTOKEN": emu.system_access_token,
            "NO_PROXY": "127.0.0.1,localhost",
            **extra,
        }
    )
    return env


def timed(
    command: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    *,
    stdin: str | None = None,
    code: int = 0,
    error_output: str = "stderr",
) -> tuple[float, str]:
    """Run ``command``; return its wall time and stdout (raise unless it exits ``code``).

    The error names the command and its ``error_output`` (``"stderr"`` or ``"stdout"``).
    """
    start = time.perf_counter()
    result = subprocess.run(
        command, env=env, cwd=cwd, input=stdin, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if result.returncode != code:
        output = getattr(result, error_output)
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {output}")
    return elapsed, result.stdout


Step = Callable[[], tuple[float, str]]


def warm_up(steps: Mapping[str, Step], order: Sequence[str], rounds: int) -> None:
    """Run each step in ``order``, ``rounds`` times: bytecode caches, the page cache."""
    for _ in range(rounds):
        for name in order:
            steps[name]()


def in_turns(
    steps: Mapping[str, Step],
    runs: int,
    *,
    warm: str,
    cold: str,
    previous: str,
    hit: Callable[[str, str], bool],
) -> tuple[dict[str, list[float]], int]:
    """``runs`` rounds of every step in turns; return the samples and the warm hits.

    Each cold run refills the cache, so the next round's warm run must print what it printed
    (``previous`` is the output of a cold run before the first round); ``hit(out, previous)``
    judges a warm run's output.
    """
    samples: dict[str, list[float]] = {name: [] for name in steps}
    hits = 0
    for _ in range(runs):
        for name, step in steps.items():
            elapsed, out = step()
            samples[name].append(elapsed)
            if name == warm:
                hits += hit(out, previous)
            elif name == cold:
                previous = out
    return samples, hits


async def measure(
    emu: EmulatorProcess,
    steps: Mapping[str, Step],
    *,
    runs: int,
    warmups: int,
    warmup_order: Sequence[str],
    warm: str,
    cold: str,
    hit: Callable[[str, str], bool],
) -> tuple[dict[str, list[float]], int, Counts]:
    """Warm up, run one cold step, then :func:`in_turns` with the emulator's counters zeroed.

    Returns the samples, the warm hits and the requests the emulator served in the timed runs.
    """
    warm_up(steps, warmup_order, warmups)
    previous = steps[cold]()[1]
    await emu.reset_counts()
    samples, hits = in_turns(steps, runs, warm=warm, cold=cold, previous=previous, hit=hit)
    return samples, hits, await emu.counts()


def process_result(
    samples: Mapping[str, Sequence[float]],
    counts: Counts,
    hits: int,
    *,
    runs: int,
    warmups: int,
    ratio_key: str,
    numerator: str,
    denominator: str,
    target: float,
) -> dict[str, Any]:
    """The figures of a process benchmark: series, ``ratio_key`` (medians of ``numerator`` over
    ``denominator``) against ``target``, and the cold runs' requests (one OIDC and one Entra each).
    """
    series = series_result(samples)
    value = ratio(
        series[numerator]["summary_s"]["median"], series[denominator]["summary_s"]["median"]
    )
    return {
        "runs": runs,
        "warmups": warmups,
        "series": series,
        ratio_key: value,
        "target_ratio_max": target,
        "pass": value <= target,
        # Every cold run makes one OIDC and one Entra request; warm runs make none and print what
        # the cold run before them cached.
        "requests": {"oidc": counts.oidc, "token": counts.token},
        "requests_ok": counts.oidc == runs and counts.token == runs,
        "warm_hits": hits,
    }


async def warm_and_cold(
    emu: EmulatorProcess,
    *,
    runs: int,
    warmups: int,
    series: Sequence[str],
    floor: Step,
    warm: Step,
    cache: Path,
    hit: Callable[[str, str], bool],
    target: float,
) -> dict[str, Any]:
    """Three ``series`` in turns: the ``floor``, ``warm`` and ``warm`` with ``cache`` removed first.

    Returns :func:`process_result` with the ratio ``ratio_warm_over_python``.
    """

    def cold() -> tuple[float, str]:
        shutil.rmtree(cache, ignore_errors=True)
        return warm()

    steps = {series[0]: floor, series[1]: warm, series[2]: cold}
    samples, hits, counts = await measure(
        emu,
        steps,
        runs=runs,
        warmups=warmups,
        warmup_order=(series[0], series[2], series[1]),
        warm=series[1],
        cold=series[2],
        hit=hit,
    )
    return process_result(
        samples,
        counts,
        hits,
        runs=runs,
        warmups=warmups,
        ratio_key="ratio_warm_over_python",
        numerator=series[1],
        denominator=series[0],
        target=target,
    )


def render_warm_and_cold(result: Mapping[str, Any], cached: str) -> str:
    """The report of :func:`warm_and_cold`; ``cached`` names what a warm run prints."""
    ratio = result["ratio_warm_over_python"]
    return (
        runs_header(result)
        + series_table(result["series"])
        + f"\nwarm / python -c pass: {ratio:.2f}x (target <= {result['target_ratio_max']:.0f}x): "
        f"{verdict(result['pass'])}\n" + requests_line(result, cached)
    )


def series_result(samples: Mapping[str, Sequence[float]]) -> dict[str, dict[str, Any]]:
    """Samples and summary of each series, for JSON output."""
    return {
        name: {"samples_s": list(values), "summary_s": Summary.of(values).as_dict()}
        for name, values in samples.items()
    }


def series_table(series: Mapping[str, Mapping[str, Any]]) -> str:
    """The ``process / wall time`` table of a :func:`series_result`."""
    rows = [
        [name, ms_range(Summary.from_dict(values["summary_s"]))] for name, values in series.items()
    ]
    return render_table(["process", "wall time"], rows)


def runs_header(result: Mapping[str, Any]) -> str:
    """The line above a :func:`series_table`, and a blank line."""
    return (
        f"{result['runs']} runs of each (after {result['warmups']} warm-up rounds), in turns; "
        "median [min-max]\n\n"
    )


def requests_line(result: Mapping[str, Any], cached: str) -> str:
    """Emulator requests of the cold runs, and the warm runs that printed the ``cached`` item."""
    requests = result["requests"]
    return (
        f"emulator requests during the timed runs: {requests['oidc']} OIDC + "
        f"{requests['token']} Entra for {result['runs']} cold runs "
        f"({'as expected' if result['requests_ok'] else 'UNEXPECTED'}); warm runs that "
        f"printed the cached {cached}: {result['warm_hits']}/{result['runs']}\n"
    )


def process_bench_main(
    name: str,
    doc: str,
    argv: Sequence[str] | None,
    benchmark: Callable[[int, int], Coroutine[Any, Any, dict[str, Any]]],
    render: Callable[[dict[str, Any]], str],
) -> int:
    """``[--quick] [--runs N] [--json FILE]``: run ``benchmark(runs, warmups)``, print, save."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true", help="10 runs of each, 1 warm-up round")
    parser.add_argument("--runs", type=int, help="runs of each series (default 30; quick 10)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args(argv)
    runs = args.runs or (10 if args.quick else 30)
    warmups = 1 if args.quick else 3
    facts = machine_facts()
    print(
        f"{name} ({'quick' if args.quick else 'full'} mode)\n{render_machine_facts(facts)}",
        flush=True,
    )
    result = asyncio.run(benchmark(runs, warmups))
    print(render(result), flush=True)
    if args.json:
        write_json(args.json, {"machine": facts, **result})
    return 0


def profile_outputs_and_connections(
    count: int, scopes: Sequence[str], *, federated: bool = False
) -> tuple[list[str], list[str]]:
    """TOML lines of the ``bench`` profile: ``token_file`` outputs and ``count`` connections.

    Connection ``c{i}`` gets one output per scope (plus a ``federated_token_file`` if asked).
    """
    outputs: list[str] = []
    for i in range(count):
        for j, scope in enumerate(scopes):
            outputs += [
                "[[profiles.bench.outputs]]",
                'kind = "token_file"',
                f'connection = "c{i}"',
                f'scope = "{scope}"',
                f'path = "out/c{i}-{j}.token"',
                "",
            ]
        if federated:
            outputs += [
                "[[profiles.bench.outputs]]",
                'kind = "federated_token_file"',
                f'connection = "c{i}"',
                f'path = "out/c{i}.jwt"',
                "",
            ]
    connections: list[str] = []
    for i in range(count):
        connections += [
            f"[connections.c{i}]",
            f'tenant_id = "{TENANT}"',
            f'client_id = "{i:08d}-1111-2222-3333-444444444444"',
            f'service_connection_id = "{i:08d}-aaaa-bbbb-cccc-000000000000"',
            "",
        ]
    return outputs, connections


# ------------------------------------------------------------------------------------------------
# Statistics and formatting


@dataclass(frozen=True)
class Summary:
    """Median, minimum and maximum of a non-empty list of samples."""

    median: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Self:
        """Summarise ``samples`` (at least one)."""
        if not samples:
            raise ValueError("no samples")
        return cls(statistics.median(samples), min(samples), max(samples))

    @classmethod
    def from_dict(cls, summary: Mapping[str, float]) -> Self:
        """The inverse of :meth:`as_dict`."""
        return cls(summary["median"], summary["min"], summary["max"])

    def as_dict(self) -> dict[str, float]:
        """For JSON output."""
        return {"median": self.median, "min": self.minimum, "max": self.maximum}


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; infinity when the denominator is zero."""
    return numerator / denominator if denominator else float("inf")


def ms(seconds: float) -> str:
    """Seconds as milliseconds with one decimal: ``'104.2 ms'``."""
    return f"{seconds * 1000:.1f} ms"


def ms_range(summary: Summary) -> str:
    """``'104.2 ms [101.3-110.0]'``: the median, then the min-max range."""
    return f"{ms(summary.median)} [{summary.minimum * 1000:.1f}-{summary.maximum * 1000:.1f}]"


def us_range(summary: Summary) -> str:
    """Like :func:`ms_range`, in microseconds with two decimals."""
    scale = 1e6
    return (
        f"{summary.median * scale:.2f} us "
        f"[{summary.minimum * scale:.2f}-{summary.maximum * scale:.2f}]"
    )


def times(value: float) -> str:
    """A ratio as ``'25.1x'``."""
    return f"{value:.1f}x" if value < 100 else f"{value:.0f}x"


def verdict(ok: bool) -> str:
    """``'PASS'`` or ``'MISS'``."""
    return "PASS" if ok else "MISS"


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain-text table, left-aligned columns separated by two spaces, with a rule."""
    body = [list(map(str, row)) for row in rows]
    widths = [len(header) for header in headers]
    for row in body:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    rule = "  ".join("-" * width for width in widths)
    return "".join(f"{text.rstrip()}\n" for text in [line(headers), rule, *map(line, body)])


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_facts() -> dict[str, Any]:
    """Date, Python, platform, cores and the versions of the packages being compared."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        # Other work on the machine competes for the same cores: record how busy it was.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "packages": {
            name: _package_version(name)
            for name in ("azauth", "azure-identity", "azure-core", "msal", "aiohttp", "requests")
        },
    }


def render_machine_facts(facts: Mapping[str, Any]) -> str:
    """The facts as two lines of text."""
    packages = ", ".join(f"{name} {ver}" for name, ver in facts["packages"].items())
    return (
        f"{facts['date']}; {facts['implementation']} {facts['python']} on {facts['platform']} "
        f"({facts['machine']}, {facts['cpu_count']} cores, load average "
        f"{facts['load_average_1m']} at start)\n{packages}\n"
    )


def write_json(path: str, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as indented JSON to ``path``."""
    Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    """``python bench/_common.py --serve``: the emulator child."""
    parser = argparse.ArgumentParser(description="emulator child process of the benchmarks")
    parser.add_argument("--serve", action="store_true", required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.latency, args.tls))


if __name__ == "__main__":
    main()
