"""`siray` for the tests' real shells (helpers.siray_on_path): a command that has the fork server
(tests/zygote.py) fork `python -m siray_cli ARGS` with this process's arguments, environment,
directory and standard descriptors, waits for it, and ends as it ended. A completion asks siray
for its candidates up to a dozen times a test; forked, each costs a few hundredths of a second
instead of a fresh interpreter's few tenths.

Written after a `#!PYTHON -IS` line into an executable named `siray`: standard library only.
"""

import json
import os
import signal
import socket
import sys

SERVER = "TESTS_FORK_SERVER"  # the fork server's socket (not SIRAY_*: siray would read it)


def main() -> int:
    environment = dict(os.environ)
    path = environment.pop(SERVER)
    request = {"argv": sys.argv[1:], "env": environment, "cwd": os.getcwd()}
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as connection:
        connection.connect(path)
        socket.send_fds(connection, [json.dumps(request).encode()], [0, 1, 2])
        json.loads(connection.recv(4096))  # {"pid": N}: the child runs
        answer = connection.recv(4096)
    if not answer:
        print("siray (tests): the fork server went away", file=sys.stderr)
        return 70
    code = os.waitstatus_to_exitcode(int(json.loads(answer)["status"]))
    if code < 0:  # the child died of a signal: so does this process
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main())
