"""Fixtures of Tessera's black-box end-to-end suite.

Every test talks to a real `tessera serve` process over HTTP, as a client would. See README.md beside this file.

Fixtures:
    tessera_bin        Path of the binary (env TESSERA_BIN, default <repo>/target/debug/tessera).
    start_server       Factory: start_server(backend="sqlite", env=None, config_toml=None, *, args=(),
                       share_with=None, wait=True) -> Server. Every server it starts is stopped at teardown.
    backend            "sqlite" / "postgres" (parametrized: a test using it runs once per backend).
    server             start_server(backend): one fresh server per test and backend.
    run_cli            run_cli(args, server=None, *, data_dir=None, env=None, input=None, timeout=60, check=False)
                       -> subprocess.CompletedProcess (text) of `tessera <args>`.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
API_PATH = "/AuthServer/REST/U2F/U2FServer.aspx"
SOAP_PATH = "/AuthServerWCFService/SurePassAuthServerWCFService.svc"
READY_TIMEOUT = 30.0  # seconds for GET /healthz to answer 200
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
BACKENDS = ("sqlite", "postgres")
ACCOUNT_KEYS = ("spAccountLoginName", "spAccountLoginKey")

# Every Server ever started in this pytest process, so that none outlives it (see _kill_all_servers).
_ALL_SERVERS: list["Server"] = []


# ---------------------------------------------------------------------------------------------------------------------
# helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(text: str, limit: int = 6000) -> str:
    return text if len(text) <= limit else "[...]\n" + text[-limit:]


# TESSERA_* variables of the outer environment that do reach the servers (the rest would be read as settings).
PASS_THROUGH = {"TESSERA_LOG"}


def _base_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment of a tessera process: ours without TESSERA_* (so nothing leaks in from the shell or from the
    harness's own variables; TESSERA_LOG excepted), plus `extra` (a value of None removes that variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_") or k in PASS_THROUGH}
    env.setdefault("RUST_BACKTRACE", "1")
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def find_psql() -> str:
    candidates = []
    for p in Path("/usr/lib/postgresql").glob("*/bin/psql"):
        m = re.fullmatch(r"\d+", p.parent.parent.name)
        if m:
            candidates.append((int(p.parent.parent.name), str(p)))
    if candidates:
        return max(candidates)[1]
    psql = shutil.which("psql")
    if psql:
        return psql
    pytest.fail("psql not found (neither /usr/lib/postgresql/*/bin/psql nor on PATH): install postgresql",
                pytrace=False)


def pg_admin_url() -> str:
    url = os.environ.get("TESSERA_TEST_PG_ADMIN_URL")
    if not url:
        pytest.fail(
            "backend 'postgres' needs TESSERA_TEST_PG_ADMIN_URL (e.g. postgres://postgres@127.0.0.1:55432/postgres); "
            "scripts/test starts a throw-away cluster and sets it",
            pytrace=False,
        )
    return url


class PgDatabase:
    """A fresh, uniquely named database in the test cluster, dropped again at teardown."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.name = "tessera_t_" + uuid.uuid4().hex[:16]
        parts = urlsplit(admin_url)
        self.url = urlunsplit((parts.scheme, parts.netloc, "/" + self.name, parts.query, parts.fragment))
        self.psql = find_psql()
        self.sql(f'CREATE DATABASE "{self.name}"')

    def sql(self, statement: str, *, url: str | None = None) -> str:
        """Run one SQL statement with psql; returns its unaligned, tuples-only output."""
        env = dict(os.environ, PGCONNECT_TIMEOUT="10")
        proc = subprocess.run(
            [self.psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url or self.admin_url, "-c", statement],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            pytest.fail(f"psql failed ({statement!r} on {url or self.admin_url}):\n{proc.stderr}", pytrace=False)
        return proc.stdout

    def drop(self) -> None:
        try:
            self.sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        except BaseException as e:  # teardown: report, never mask the test's own outcome
            print(f"warning: could not drop test database {self.name}: {e}")


# ---------------------------------------------------------------------------------------------------------------------
# Server


class Server:
    """One `tessera serve` process, its data dir, port and (for postgres) database.

    Attributes: url, api_url, soap_url, port, backend, data_dir, workdir, env (the process environment),
    database_url (postgres only), config_path (or None), account (dict with spAccountLoginName/spAccountLoginKey),
    initial_account (the whole initial-account.json), proc, returncode (after stop/kill).
    """

    def __init__(
        self,
        *,
        binary: Path,
        workdir: Path,
        name: str,
        backend: str,
        data_dir: Path,
        port: int,
        env: Mapping[str, str | None] | None,
        config_toml: str | None,
        args: Sequence[str],
        database_url: str | None,
        config_path: Path | None = None,
    ):
        self.binary = Path(binary)
        self.workdir = Path(workdir)
        self.name = name
        self.backend = backend
        self.data_dir = Path(data_dir)
        self.port = port
        self.database_url = database_url
        self.args = list(args)
        self.url = f"http://127.0.0.1:{port}"
        self.api_url = self.url + API_PATH
        self.soap_url = self.url + SOAP_PATH
        self.stdout_path = self.workdir / f"{name}.stdout.log"
        self.stderr_path = self.workdir / f"{name}.stderr.log"
        self.config_path = config_path
        if config_toml is not None:
            self.config_path = self.workdir / f"{name}.toml"
            self.config_path.write_text(config_toml)
        tessera_env: dict[str, str | None] = {
            "TESSERA_LISTEN": f"127.0.0.1:{port}",
            "TESSERA_DATA_DIR": str(self.data_dir),
        }
        if database_url:
            tessera_env["TESSERA_DATABASE_URL"] = database_url
        tessera_env.update(env or {})
        self.env = _base_env(tessera_env)
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.account: dict[str, str] = {}
        self.initial_account: dict[str, Any] = {}
        self._http = self._new_session()
        self._starts = 0

    def __repr__(self) -> str:
        return f"<Server {self.name} {self.backend} {self.url} pid={self.proc.pid if self.proc else None}>"

    @staticmethod
    def _new_session() -> requests.Session:
        s = requests.Session()
        s.trust_env = False  # never send loopback traffic through a proxy from the environment
        return s

    # -- process control ------------------------------------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [str(self.binary), "serve"]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        return cmd + self.args

    def start(self, *, wait: bool = True) -> "Server":
        assert not self.running, f"{self!r} is already running"
        self._starts += 1
        with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
            if self._starts > 1:
                marker = f"\n----- harness: start #{self._starts} -----\n".encode()
                err.write(marker)
                out.write(marker)
                err.flush()
                out.flush()
            # Deliberately no start_new_session: scripts/test kills the pytest process group on timeout, servers too.
            self.proc = subprocess.Popen(
                self.command(),
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.returncode = None
        pidfile = os.environ.get("TESSERA_TEST_PIDFILE")
        if pidfile:
            with open(pidfile, "a") as f:
                f.write(f"{self.proc.pid}\n")
        if wait:
            self.wait_ready()
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait for GET /healthz == 200, then read <data_dir>/initial-account.json."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                self._fail(f"exited with code {code} before GET /healthz answered 200")
            try:
                r = self._http.get(self.url + "/healthz", timeout=2)
                if r.status_code == 200:
                    break
                last = f"HTTP {r.status_code}"
            except requests.RequestException as e:
                last = type(e).__name__
            if time.monotonic() > deadline:
                self.kill()
                self._fail(f"GET /healthz did not answer 200 within {timeout:.0f} s (last: {last})")
            time.sleep(0.05)
        self._load_account(deadline=time.monotonic() + 5)

    def _load_account(self, deadline: float) -> None:
        path = self.data_dir / "initial-account.json"
        while True:
            try:
                data = json.loads(path.read_text())
                if all(isinstance(data.get(k), str) and data[k] for k in ACCOUNT_KEYS):
                    break
                problem = f"it lacks string keys {ACCOUNT_KEYS}: {data!r}"
            except (OSError, ValueError) as e:
                problem = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                self._fail(
                    f"/healthz is 200 but {path} is not usable ({problem}); the server must write it "
                    "(atomically) before /healthz answers 200"
                )
            time.sleep(0.05)
        self.initial_account = data
        self.account = {k: data[k] for k in ACCOUNT_KEYS}

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to `timeout` s, then SIGKILL. Returns the exit code (also kept in .returncode)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                with open(self.stderr_path, "ab") as err:
                    err.write(f"\n----- harness: no exit within {timeout} s of SIGTERM, killed -----\n".encode())
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self) -> int | None:
        """SIGKILL (a crash, as far as the server can tell)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.returncode = self.proc.returncode
        return self.returncode

    def restart(self, *, env: Mapping[str, str | None] | None = None, wait: bool = True) -> "Server":
        """Stop (if running) and start again on the same data dir, database and port. `env` adds/overrides (None
        removes) variables from then on."""
        self.stop()
        if env:
            for k, v in env.items():
                if v is None:
                    self.env.pop(k, None)
                else:
                    self.env[k] = str(v)
        self._http.close()
        self._http = self._new_session()
        return self.start(wait=wait)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit by itself (e.g. a refused configuration); returns the exit code."""
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._fail(f"still running after {timeout} s, expected it to exit")
        return self.returncode

    # -- logs -----------------------------------------------------------------------------------------------------

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stdout_text(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def logs_text(self, limit: int = 6000) -> str:
        out = f"--- {self.name} stderr ({self.stderr_path}) ---\n{_tail(self.stderr_text(), limit)}"
        stdout = self.stdout_text()
        if stdout.strip():
            out += f"\n--- {self.name} stdout ({self.stdout_path}) ---\n{_tail(stdout, limit)}"
        return out

    def _fail(self, what: str) -> None:
        self._logs_reported = True  # the failure message carries the logs already
        cmd = " ".join(self.command())
        pytest.fail(f"tessera server {self.name} ({cmd}): {what}\n{self.logs_text()}", pytrace=False)

    # -- HTTP -----------------------------------------------------------------------------------------------------

    def get(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self._http.get(self.url + path, **kw)

    def post(self, body: Any, *, method: str = "POST", path: str = API_PATH, timeout: float = 30, headers=None):
        """Send `body` to the JSON API (dict/list: as JSON; str/bytes: as is) and return the raw Response."""
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        return self._http.request(method, self.url + path, data=data, headers=hdrs, timeout=timeout)

    def call(self, type: str, /, **fields: Any) -> dict[str, Any]:
        """POST {type, spAccountLoginName, spAccountLoginKey, **fields} and return the parsed JSON reply (HTTP 200
        asserted). `fields` may override the account keys (e.g. spAccountLoginKey="wrong")."""
        body = {"type": type, **self.account, **fields}
        r = self.post(body)
        assert r.status_code == 200, f"{type}: HTTP {r.status_code}: {r.text[:2000]}"
        try:
            reply = r.json()
        except ValueError:
            pytest.fail(f"{type}: reply is not JSON: {r.text[:2000]!r}", pytrace=False)
        assert isinstance(reply, dict), f"{type}: reply is not a JSON object: {reply!r}"
        return reply

    # -- CLI ------------------------------------------------------------------------------------------------------

    def cli(self, args: Sequence[str], **kw: Any) -> subprocess.CompletedProcess:
        """`tessera <args>` with this server's environment (and --config); see run_cli."""
        return _run_cli(self.binary, args, server=self, **kw)


def _run_cli(
    binary: Path,
    args: Sequence[str],
    server: Server | None = None,
    *,
    data_dir: Path | str | None = None,
    env: Mapping[str, str | None] | None = None,
    input: str | None = None,
    timeout: float = 60,
    check: bool = False,
    config: bool = True,
) -> subprocess.CompletedProcess:
    if server is not None:
        full_env = dict(server.env)
        cwd = server.workdir
    else:
        full_env = _base_env()
        cwd = Path(data_dir).parent if data_dir is not None else REPO_ROOT
    if data_dir is not None:
        full_env["TESSERA_DATA_DIR"] = str(data_dir)
    for k, v in (env or {}).items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = str(v)
    cmd = [str(binary), *map(str, args)]
    if config and server is not None and server.config_path is not None and "--config" not in cmd:
        cmd += ["--config", str(server.config_path)]
    try:
        proc = subprocess.run(cmd, env=full_env, cwd=cwd, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)}: no exit within {timeout} s\nstdout: {e.stdout!r}\nstderr: {e.stderr!r}",
                    pytrace=False)
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}",
            pytrace=False,
        )
    return proc


@atexit.register
def _kill_all_servers() -> None:
    for s in _ALL_SERVERS:
        if s.running:
            s.kill()


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (e.g. scripts/test's time limit) ends pytest through its normal exit path, so servers get killed.
    def on_term(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_term)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for s in getattr(item, "_tessera_servers", []):
            if getattr(s, "_logs_reported", False):
                continue
            rep.sections.append((f"tessera server {s.name} ({s.backend}) logs", s.logs_text()))


# ---------------------------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def tessera_bin() -> Path:
    path = Path(os.environ.get("TESSERA_BIN") or REPO_ROOT / "target" / "debug" / "tessera")
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"tessera binary not found at {path} (set TESSERA_BIN, or build it: cargo build -p tessera; "
            "scripts/test does both)",
            pytrace=False,
        )
    return path


@pytest.fixture
def start_server(request: pytest.FixtureRequest, tessera_bin: Path, tmp_path_factory: pytest.TempPathFactory):
    """Factory: start_server(backend="sqlite", env=None, config_toml=None, *, args=(), share_with=None, wait=True).

    - backend: "sqlite" (the server's default store in its data dir) or "postgres" (a fresh database in the test
      cluster, passed as TESSERA_DATABASE_URL).
    - env: extra environment (a value of None removes a variable).
    - config_toml: written to a file and passed as `serve --config FILE`.
    - args: more arguments after `serve`.
    - share_with: another Server whose data dir and database this one uses too (a second node); new port.
    - wait: False returns right after spawning (for servers expected to refuse to start: use .wait_exit()).
    """
    servers: list[Server] = []
    databases: list[PgDatabase] = []
    request.node._tessera_servers = servers

    def _start(
        backend: str = "sqlite",
        env: Mapping[str, str | None] | None = None,
        config_toml: str | None = None,
        *,
        args: Sequence[str] = (),
        share_with: Server | None = None,
        wait: bool = True,
    ) -> Server:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        name = f"server{len(servers) + 1}"
        workdir = tmp_path_factory.mktemp("tessera")
        if share_with is not None:
            if share_with.backend != backend:
                raise ValueError("share_with needs the same backend")
            data_dir = share_with.data_dir
            database_url = share_with.database_url
        else:
            data_dir = workdir / "data"
            data_dir.mkdir()
            database_url = None
            if backend == "postgres":
                db = PgDatabase(pg_admin_url())
                databases.append(db)
                database_url = db.url
        s = Server(
            binary=tessera_bin,
            workdir=workdir,
            name=name,
            backend=backend,
            data_dir=data_dir,
            port=free_port(),
            env=env,
            config_toml=config_toml,
            args=args,
            database_url=database_url,
        )
        servers.append(s)
        _ALL_SERVERS.append(s)
        return s.start(wait=wait)

    yield _start

    for s in reversed(servers):
        s.stop()
    for db in databases:
        db.drop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server(start_server, backend: str) -> Server:
    return start_server(backend)


@pytest.fixture
def run_cli(tessera_bin: Path):
    """run_cli(args, server=None, *, data_dir=None, env=None, input=None, timeout=60, check=False, config=True).

    Runs `tessera <args>` and returns the CompletedProcess (stdout/stderr as text). With `server`, the command gets
    that server's environment (TESSERA_DATA_DIR, TESSERA_DATABASE_URL, ...) and, if it has one, `--config FILE`
    appended; without, a clean environment plus TESSERA_DATA_DIR=data_dir. `env` adds/overrides (None removes).
    check=True fails the test on a non-zero exit, showing stdout and stderr.
    """

    def _run(args: Sequence[str], server: Server | None = None, **kw: Any) -> subprocess.CompletedProcess:
        return _run_cli(tessera_bin, args, server, **kw)

    return _run
