"""`make install` / `make uninstall` into temporary directories, and the installed unit.

Installs for real (a venv, pip, the package non-editable) under tmp_path, then runs the
installed program from outside the checkout, so nothing can come from the source tree.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.monitor_proc import REPO

INSTALL = REPO / "scripts" / "install.sh"
UNINSTALL = REPO / "scripts" / "uninstall.sh"


def _run(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", str(script)], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=600, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return proc


def _layout(tmp: Path) -> dict[str, str]:
    return {
        "PREFIX": str(tmp / "opt" / "ringwatch"),
        "SYSCONFDIR": str(tmp / "etc" / "ringwatch"),
        "UNITDIR": str(tmp / "units"),
        "BINDIR": str(tmp / "bin"),
    }


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    # verify exits 0 on unknown keys and other warnings: clean means nothing on stderr.
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                          timeout=120, cwd="/")


def test_install_run_and_uninstall(tmp_path: Path) -> None:
    env = _layout(tmp_path)
    prefix, etc = Path(env["PREFIX"]), Path(env["SYSCONFDIR"])
    _run(INSTALL, env)

    # The CLI runs from the install, through the BINDIR link, outside the checkout.
    ringwatch = tmp_path / "bin" / "ringwatch"
    assert os.readlink(ringwatch) == str(prefix / "bin" / "ringwatch")
    helped = subprocess.run([str(ringwatch), "--help"], capture_output=True, text=True, cwd="/", timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "stats" in helped.stdout and "maps" in helped.stdout and "run" in helped.stdout
    where = subprocess.run(
        [str(prefix / "bin" / "python"), "-c",
         "import monitor, monitor.kernel.sensor as s, monitor.enforce.enforcer as e, monitor.paths as p;"
         "print(monitor.__file__); print(s.BPF_DIR); print(p.rules_dir()); print(e.LSM_SOURCE)"],
        capture_output=True, text=True, cwd="/", timeout=60, check=True,
    ).stdout.split()
    assert where[0].startswith(str(prefix / "lib")), "installed non-editable, into the venv"
    assert where[1] == str(prefix / "share" / "ringwatch" / "bpf")
    assert where[2] == str(prefix / "share" / "ringwatch" / "rules")
    # Enforcement finds its LSM programs the same way (it once looked beside the source tree).
    assert where[3] == str(prefix / "share" / "ringwatch" / "bpf" / "lsm.bpf.c")
    assert Path(where[3]).is_file()
    assert (Path(where[1]) / "sensor.bpf.c").read_text() == (REPO / "bpf" / "sensor.bpf.c").read_text()

    # The unit names the installed paths and passes systemd's own check.
    unit = tmp_path / "units" / "ringwatch.service"
    text = unit.read_text()
    assert f"ExecStart={prefix}/bin/ringwatch --log-json run --config {etc}/config.yaml" in text
    verified = _verify(unit)
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr

    # The shipped config is installed, and it loads with the installed program.
    assert (etc / "config.yaml").read_text() == (REPO / "packaging" / "config.yaml").read_text()
    assert (etc / "config.yaml").stat().st_mode & 0o777 == 0o600  # may hold Kafka credentials
    assert (etc / "rules.d").is_dir()
    check = subprocess.run(
        [str(prefix / "bin" / "python"), "-c",
         "import pathlib, sys; from monitor import config;"
         "print(config.load(pathlib.Path(sys.argv[1])).source)", f"{etc}/config.yaml"],
        capture_output=True, text=True, cwd="/", timeout=60,
    )
    assert check.returncode == 0 and check.stdout.strip() == f"{etc}/config.yaml", check.stderr

    # Reinstalling keeps the operator's config; the new default goes beside it.
    (etc / "config.yaml").write_text("drop_alert:\n  min_interval_s: 5\n")
    (etc / "rules.d" / "local.yaml").write_text("[]\n")
    _run(INSTALL, env)
    assert (etc / "config.yaml").read_text() == "drop_alert:\n  min_interval_s: 5\n"
    assert (etc / "config.yaml.dist").read_text() == (REPO / "packaging" / "config.yaml").read_text()

    # Uninstall removes the program, unit and link; config and rules stay until PURGE=1.
    _run(UNINSTALL, env)
    assert not prefix.exists() and not unit.exists() and not ringwatch.is_symlink()
    assert (etc / "rules.d" / "local.yaml").exists()
    _run(UNINSTALL, {**env, "PURGE": "1"})
    assert not etc.exists()


def test_uninstall_refuses_a_prefix_that_is_not_an_install(tmp_path: Path) -> None:
    env = _layout(tmp_path)
    victim = Path(env["PREFIX"])
    victim.mkdir(parents=True)
    (victim / "data").write_text("keep me")
    proc = subprocess.run(["bash", str(UNINSTALL)], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=60, cwd="/")
    assert proc.returncode == 2
    assert "is not a ringwatch install" in proc.stderr
    assert (victim / "data").read_text() == "keep me"


def test_destdir_staging_names_final_paths(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    env = {"DESTDIR": str(stage), "PREFIX": "/opt/ringwatch-staged"}
    _run(INSTALL, env)
    venv = stage / "opt" / "ringwatch-staged"
    shebang = (venv / "bin" / "ringwatch").read_text().splitlines()[0]
    assert shebang == "#!/opt/ringwatch-staged/bin/python3"
    assert not any(str(stage) in p.read_text(errors="replace")
                   for p in (venv / "bin").iterdir() if p.is_file() and not p.is_symlink())
    unit = (stage / "etc" / "systemd" / "system" / "ringwatch.service").read_text()
    assert "ExecStart=/opt/ringwatch-staged/bin/ringwatch " in unit
    assert (stage / "etc" / "ringwatch" / "config.yaml").exists()
    assert os.readlink(stage / "usr" / "local" / "bin" / "ringwatch") == "/opt/ringwatch-staged/bin/ringwatch"
    # The staged tree still runs in place (its python finds its own venv).
    helped = subprocess.run([str(venv / "bin" / "python"), "-m", "monitor", "--help"],
                            capture_output=True, text=True, cwd="/", timeout=60)
    assert helped.returncode == 0 and "maps" in helped.stdout
    assert not Path("/opt/ringwatch-staged").exists()



def test_repo_unit_verifies_clean(tmp_path: Path) -> None:
    # Without an install: the unit as shipped, its ExecStart pointed at a real executable.
    ringwatch = tmp_path / "bin" / "ringwatch"
    ringwatch.parent.mkdir()
    ringwatch.write_text("#!/bin/sh\nexit 0\n")
    ringwatch.chmod(0o755)
    text = (REPO / "packaging" / "systemd" / "ringwatch.service").read_text()
    assert "ExecStart=/opt/ringwatch/bin/ringwatch " in text
    unit = tmp_path / "ringwatch.service"
    unit.write_text(text.replace("/opt/ringwatch/bin/ringwatch", str(ringwatch)))
    verified = _verify(unit)
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    # And verify does catch a mistake, so a clean result means something.
    unit.write_text(unit.read_text().replace("ProtectClock=yes", "ProtectClocks=yes"))
    assert "Unknown key" in _verify(unit).stderr
