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
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Self

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
# Seconds any single control exchange with the child may take (start-up included).
CONTROL_TIMEOUT = 30.0

# Variables that could send traffic elsewhere or change what either credential does.
_PROXY_NAMES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
# Trust settings: removed so that both sides trust exactly the CA the benchmark names.
_TRUST_NAMES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_CLEARED_PREFIXES = ("AZURE_", "SYSTEM_", "AZURESUBSCRIPTION_", "ARM_", "IDENTITY_", "MSI_")


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
        if name.upper() not in _PROXY_NAMES and not name.upper().startswith(_CLEARED_PREFIXES)
    }
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
