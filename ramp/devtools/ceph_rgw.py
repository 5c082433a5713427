"""A throw-away single-node Ceph cluster with an S3 gateway (RGW) on loopback.

Why: ramp's stores live on S3 at scale, and its tests must run against a real S3 server, not a
mock. Debian ships Ceph (radosgw, ceph-mon, ceph-osd); this module starts one monitor, one
in-memory OSD and one RGW in a scratch folder, creates an S3 user, and tears it all down again.
Nothing is installed or configured system-wide; every path lives under the given folder.

    python -m ramp.devtools.ceph_rgw start --dir /tmp/s3 --port 7480   # prints the endpoint
    python -m ramp.devtools.ceph_rgw stop --dir /tmp/s3

Settings that matter (measured, see docs/episode-format.md): no cephx auth and crc on-wire mode
(else RGW loops authenticating), pool size 1, memstore, and `tcp_nodelay=1` on the beast
frontend (without it every pyarrow request waits ~40 ms on Nagle + delayed ACK).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool")
ACCESS_KEY = "ramp-test-access"
SECRET_KEY = "ramp-test-secret-key"
INSTALL_HINT = (
    "install Debian's Ceph packages: `apt-get install -y --no-install-recommends "
    "radosgw ceph-mon ceph-osd` (make setup does this when run as root)"
)


class CephUnavailable(RuntimeError):
    """Ceph is not installed or could not start; the message says which and how to fix it."""


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


def free_port() -> int:
    """A free port below the kernel's ephemeral range (32768+): the daemons' own outgoing
    connections take ephemeral ports, and one of them grabbing a port chosen from that range
    before the gateway binds it was seen to fail the start (EADDRINUSE)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise CephUnavailable("no free port in 20000-32000")


CONF = """\
[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
osd crush chooseleaf type = 0
run dir = {dir}/run
log file = {dir}/log/$name.log
admin socket = {dir}/run/$name.asok
pid file = {dir}/run/$name.pid
keyring = {dir}/keyring
[mon]
mon data = {dir}/mon/$cluster-$id
[osd]
osd data = {dir}/osd/$cluster-$id
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{port} tcp_nodelay=1
rgw data = {dir}/rgw
"""


@dataclass
class CephRGW:
    """One running single-node Ceph + RGW. Use `start()`; `stop()` kills exactly its processes."""

    workdir: Path
    port: int
    mon_port: int
    procs: list[subprocess.Popen] = field(default_factory=list)
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf(self) -> str:
        return str(self.workdir / "ceph.conf")

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client (and ramp) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def _run(self, *args: str, timeout: float = 60) -> str:
        out = subprocess.run(
            [*args, "-c", self.conf], capture_output=True, text=True, timeout=timeout
        )
        if out.returncode != 0:
            raise CephUnavailable(
                f"{' '.join(args)} failed ({out.returncode}): {out.stderr.strip()[-800:]}"
            )
        return out.stdout

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.workdir / "log" / f"{name}.out", "ab")  # noqa: SIM115 - owned by the child
        self.procs.append(
            subprocess.Popen(
                [*args, "-c", self.conf, "-f"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a ctrl-C in the test runner does not kill it midway
            )
        )
        (self.workdir / "run" / "pids").open("a").write(f"{self.procs[-1].pid}\n")

    def _wait(self, what: str, ok, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise CephUnavailable(
                        f"a Ceph process exited ({p.args[0]}, code {p.returncode}) while waiting "
                        f"for {what}; logs in {self.workdir / 'log'}"
                    )
            try:
                if ok():
                    return
            except Exception:  # not up yet
                pass
            time.sleep(0.25)
        raise CephUnavailable(f"timed out after {timeout:.0f}s waiting for {what}")

    @classmethod
    def start(
        cls,
        workdir: str | Path,
        port: int | None = None,
        memstore_bytes: int = 4 << 30,
        timeout: float = 90.0,
    ) -> CephRGW:
        """Create and start a cluster under `workdir` (emptied first); ready to serve S3."""
        missing = missing_binaries()
        if missing:
            raise CephUnavailable(f"missing {', '.join(missing)}; {INSTALL_HINT}")
        workdir = Path(workdir).resolve()
        if workdir.exists():
            shutil.rmtree(workdir)
        for sub in ("mon", "osd/ceph-0", "run", "log", "rgw"):
            (workdir / sub).mkdir(parents=True)
        self = cls(workdir, port or free_port(), free_port())
        fsid = str(uuid.uuid4())
        (workdir / "ceph.conf").write_text(
            CONF.format(
                fsid=fsid,
                mon_port=self.mon_port,
                port=self.port,
                dir=workdir,
                memstore_bytes=memstore_bytes,
            )
        )
        try:
            subprocess.run(
                [
                    "ceph-authtool",
                    "--create-keyring",
                    str(workdir / "keyring"),
                    "--gen-key",
                    "-n",
                    "mon.",
                    "--cap",
                    "mon",
                    "allow *",
                ],
                check=True,
                capture_output=True,
            )
            subprocess.run(
                [
                    "monmaptool",
                    "--create",
                    "--addv",
                    "a",
                    f"[v2:127.0.0.1:{self.mon_port}]",
                    "--fsid",
                    fsid,
                    str(workdir / "monmap"),
                ],
                check=True,
                capture_output=True,
            )
            self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(workdir / "monmap"))
            self._spawn("mon", "ceph-mon", "-i", "a")
            self._wait("the monitor", lambda: self._run("ceph", "-s", timeout=10) != "", timeout)
            osd_id = self._run("ceph", "osd", "create").strip()
            self._run("ceph-osd", "-i", osd_id, "--mkfs")
            self._spawn("osd", "ceph-osd", "-i", osd_id)
            self._wait(
                "the OSD",
                lambda: (
                    json.loads(self._run("ceph", "osd", "stat", "-f", "json", timeout=10)).get(
                        "num_up_osds", 0
                    )
                    >= 1
                ),
                timeout,
            )
            self._spawn("rgw", "radosgw", "-n", "client.rgw")
            self._wait(
                "the S3 gateway",
                lambda: urllib.request.urlopen(self.endpoint, timeout=2).status == 200,
                timeout,
            )
            self._run(
                "radosgw-admin",
                "user",
                "create",
                "--uid=ramp",
                "--display-name=ramp",
                f"--access-key={self.access_key}",
                f"--secret={self.secret_key}",
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, CephUnavailable) as e:
            self.stop()
            detail = (
                e.stderr.decode()[-800:]
                if isinstance(e, subprocess.CalledProcessError) and e.stderr
                else str(e)
            )
            raise CephUnavailable(f"Ceph did not start in {workdir}: {detail}") from None
        (workdir / "endpoint.json").write_text(
            json.dumps({**self.env(), "workdir": str(workdir)}, indent=2)
        )
        return self

    def stop(self) -> None:
        """Kill this cluster's processes (never anyone else's) and wait for them."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self.procs.clear()


def stop_dir(workdir: str | Path) -> int:
    """Stop a cluster started by another process, from the pids it recorded; returns how many."""
    pids_file = Path(workdir) / "run" / "pids"
    n = 0
    if pids_file.exists():
        for line in pids_file.read_text().split():
            try:
                os.kill(int(line), signal.SIGTERM)
                n += 1
            except (ProcessLookupError, ValueError):
                pass
        pids_file.unlink()
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ramp.devtools.ceph_rgw",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    start = sub.add_parser("start", help="start a cluster and print its S3 endpoint")
    start.add_argument("--dir", required=True, help="scratch folder (emptied first)")
    start.add_argument("--port", type=int, default=7480)
    stop = sub.add_parser("stop", help="stop the cluster started in --dir")
    stop.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    if args.cmd == "stop":
        print(f"stopped {stop_dir(args.dir)} processes")
        return 0
    try:
        server = CephRGW.start(args.dir, args.port)
    except CephUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for k, v in server.env().items():
        print(f"export {k}={v}")
    print(f"# stop with: python -m ramp.devtools.ceph_rgw stop --dir {args.dir}", file=sys.stderr)
    for p in server.procs:  # detach: the processes outlive this command
        p.returncode = 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
