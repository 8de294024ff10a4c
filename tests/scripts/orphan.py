"""Makes an orphan: top -> middle -> grandchild; middle exits, grandchild is reparented.

Prints "MIDDLE_PID GRANDCHILD_PID" once the middle has exited. The grandchild then runs
`/bin/true WORD` for every WORD written to the FIFO given as argv[1], until "exit".
"""

import os
import subprocess
import sys

fifo = sys.argv[1]
r, w = os.pipe()
middle = os.fork()
if middle == 0:
    os.close(r)
    grandchild = os.fork()
    if grandchild == 0:
        os.close(w)
        # Let go of the caller's pipes, or it waits for their EOF forever.
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        while True:
            with open(fifo) as fh:
                word = fh.read().strip()
            if word == "exit":
                os._exit(0)
            subprocess.run(["/bin/true", word], check=True)
    os.write(w, f"{os.getpid()} {grandchild}\n".encode())
    os._exit(0)
os.close(w)
line = os.read(r, 100).decode()
os.waitpid(middle, 0)
print(line.strip(), flush=True)
