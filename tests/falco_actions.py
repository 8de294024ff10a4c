"""falcosecurity/event-generator's syscall actions, redone in Python for
tests/test_rules_falco_actions_kernel.py:

    python3 tests/falco_actions.py ACTION [ARG...]

Each action does what the Go action of the same behaviour does (events/syscall/*.go,
named in each docstring), for real, and prints one JSON object: the pid that made the
syscall ("pid") plus what the test matches the alert by. The file runs on the host and,
unchanged, inside the test's container (Debian's python3 from the host's /usr, bound
read-only), so it imports nothing outside the standard library.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

NR_PTRACE = 101
NR_INIT_MODULE = 175
PTRACE_TRACEME = 0
PTRACE_ATTACH = 16
PTRACE_DETACH = 17
ETH_P_ALL = 0x0003
WALL = 0x40000000


def _syscall(nr: int, *args: Any) -> tuple[int, int]:
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *args)
    return int(ret), ctypes.get_errno() if ret < 0 else 0


def _me(**extra: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "ppid": os.getppid(), **extra}


def open_read(path: str) -> dict[str, Any]:
    """directory_traversal_monitored_file_read.go (/etc/../etc/../etc/shadow) and
    read_sensitive_file_untrusted.go (/etc/shadow): os.Open of the path."""
    with open(path, "rb"):
        pass
    return _me(path=path)


def fork_open(path: str) -> dict[str, Any]:
    """A child forked at once opens PATH (the parent's own image is what it just exec'd)."""
    child = os.fork()
    if child == 0:
        try:
            with open(path, "rb"):
                pass
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    return _me(child=child)


def sleep_then_read(seconds: str, path: str) -> dict[str, Any]:
    """read_sensitive_file_trusted_after_startup.go: the program, run as `httpd`, sleeps
    past Falco's 5 s "new process" window, then opens the file. It reports its pid at once
    (a line on stdout) so that the test can go on meanwhile."""
    sys.stdout.write(json.dumps(_me(started=True)) + "\n")
    sys.stdout.flush()
    time.sleep(float(seconds))
    return open_read(path)


def run_shell() -> dict[str, Any]:
    """run_shell_untrusted.go spawns itself as `httpd`, which runs helper.RunShell:
    `sh -c "ls > /dev/null"`."""
    child = subprocess.Popen(["sh", "-c", "ls > /dev/null"])
    child.wait()
    return _me(child=child.pid)


def run_shell_cmd(command: str) -> dict[str, Any]:
    """A look-alike of run_shell: `sh -c COMMAND`, for Falco's known shell command lines."""
    child = subprocess.Popen(["sh", "-c", command])
    child.wait()
    return _me(child=child.pid)


def clear_log(directory: str) -> dict[str, Any]:
    """clear_log_activities.go: O_CREAT|O_TRUNC|O_WRONLY of DIR/syslog."""
    path = os.path.join(directory, "syslog")
    os.close(os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644))
    return _me(path=path)


def write_file(path: str) -> dict[str, Any]:
    """A look-alike: the same open of a log file, without O_TRUNC (an append)."""
    os.close(os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o644))
    return _me(path=path)


def ptrace_attach() -> dict[str, Any]:
    """ptrace_attached_to_process.go: start `sleep 3600`, PTRACE_ATTACH to it, detach, kill."""
    target = subprocess.Popen(["sleep", "3600"])
    try:
        ret, err = _syscall(NR_PTRACE, ctypes.c_long(PTRACE_ATTACH), ctypes.c_long(target.pid),
                            ctypes.c_long(0), ctypes.c_long(0))
        if ret == 0:
            os.waitpid(target.pid, WALL)
            _syscall(NR_PTRACE, ctypes.c_long(PTRACE_DETACH), ctypes.c_long(target.pid),
                     ctypes.c_long(0), ctypes.c_long(0))
    finally:
        target.kill()
        target.wait()
    return _me(ret=ret, errno=err, target=target.pid)


def ptrace_traceme() -> dict[str, Any]:
    """ptrace_anti_debug_attempt.go: exec.Command("sleep", "3600") with Ptrace: true, i.e.
    the child calls PTRACE_TRACEME before it execs; then it is killed."""

    def traceme() -> None:
        _syscall(NR_PTRACE, ctypes.c_long(PTRACE_TRACEME), ctypes.c_long(0), ctypes.c_long(0),
                 ctypes.c_long(0))

    child = subprocess.Popen(["sleep", "3600"], preexec_fn=traceme)
    # The traced child stops at its exec (SIGTRAP). Popen.kill() would not signal it: its
    # poll() reaps the stop as if it were an exit. Kill and reap it directly.
    os.kill(child.pid, 9)
    while True:
        _, status = os.waitpid(child.pid, WALL)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            break
    return _me(child=child.pid)


def memfd_exec() -> dict[str, Any]:
    """fileless_execution_via_memfd_create.go: the program's own binary copied into
    memfd_create("program") and run as /proc/self/fd/N (here the interpreter, with a
    do-nothing script, as the Go action runs itself with helper.DoNothing)."""
    fd = os.memfd_create("program", 0)
    with open(sys.executable, "rb") as src:
        os.write(fd, src.read())
    child = subprocess.Popen([f"/proc/self/fd/{fd}", "-c", "pass"], pass_fds=[fd])
    child.wait()
    os.close(fd)
    return _me(child=child.pid, status=child.returncode)


def packet_socket() -> dict[str, Any]:
    """packet_socket_created_in_container.go: socket(AF_PACKET, SOCK_RAW, ETH_P_ALL)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.close()
    return _me()


def inet_socket() -> dict[str, Any]:
    """A look-alike: an AF_INET socket in the same container."""
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
    return _me()


def redirect_stdout() -> dict[str, Any]:
    """redirect_stdout_stdin_to_network_connection_in_container.go (event-generator's
    gsoc2024 history): listen on localhost, connect, accept, dup2 the accepted
    connection onto stdout."""
    out = _me()
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    with socket.create_server(("127.0.0.1", 0)) as srv:
        client = socket.create_connection(srv.getsockname())
        conn, _ = srv.accept()
        os.dup2(conn.fileno(), 1)
        conn.close()
        client.close()
    return out


def module_load() -> dict[str, Any]:
    """linux_kernel_module_injection.go builds a module and insmods it inside a container;
    here init_module(2) of bytes that are no module: the kernel refuses them (ENOEXEC),
    the attempt with CAP_SYS_MODULE is the behaviour."""
    data = b"\0" * 64
    buf = ctypes.create_string_buffer(data, len(data))
    ret, err = _syscall(NR_INIT_MODULE, buf, ctypes.c_long(len(data)), ctypes.c_char_p(b""))
    return _me(ret=ret, errno=err)


def drop_and_exec(suffix: str) -> dict[str, Any]:
    """drop_and_execute_new_binary_in_container.go: copy `ls` to a new file in /bin (the
    container's writable layer; SUFFIX ends its name) and run it."""
    ls = shutil.which("ls") or "/bin/ls"
    dropped = f"/bin/falco-event-generator-syscall-DropAndExecuteNewBinaryInContainer-{suffix}"
    shutil.copyfile(ls, dropped)
    os.chmod(dropped, 0o755)
    try:
        child = subprocess.Popen([dropped], stdout=subprocess.DEVNULL)
        child.wait()
    finally:
        os.unlink(dropped)
    return _me(child=child.pid, path=dropped)


def run_image_binary(name: str) -> dict[str, Any]:
    """A look-alike of drop_and_exec: a binary that came with the image's lower layer."""
    child = subprocess.Popen([name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    child.wait()
    return _me(child=child.pid)


def connect(host: str, port: str) -> dict[str, Any]:
    """A TCP connect to HOST:PORT (the K8S API server's address, from a container), whatever
    answers; a nonblocking connect, so an unreachable address costs nothing."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    err = s.connect_ex((host, int(port)))
    s.close()
    return _me(errno=err)


ACTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    f.__name__: f
    for f in (open_read, fork_open, sleep_then_read, run_shell, run_shell_cmd, clear_log, write_file,
              ptrace_attach, ptrace_traceme, memfd_exec, packet_socket, inet_socket, redirect_stdout,
              module_load, drop_and_exec, run_image_binary, connect)
}


MARKER_PREFIX = "rwfa-"


def main() -> None:
    # A trailing "rwfa-..." word is the test's marker: it only makes the command line unique.
    action, *args = (a for a in sys.argv[1:] if not a.startswith(MARKER_PREFIX))
    result = ACTIONS[action](*args)
    if action == "redirect_stdout":
        return  # stdout is the socket now; the pid went out before
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
