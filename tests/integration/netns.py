"""Network namespaces for cluster tests: nodes on a bridge of their own, so that a test can cut
a node off (`ip link set down`) as a real network would, with every node on its own address
and the same ports. (tc netem would slow and drop packets too, but this machine's kernel has
no netem.) Needs root (the suite runs as
root: CI and `make check` on the project's machines).

    with netns.Net(3) as net:
        subprocess.Popen(net.argv(1, ["warren-server", ...]))   # runs in node 1's namespace
        net.addr(1)          # "10.231.K.1": node 1's address, reachable from the test
        net.isolate(1); net.heal(1)

Names carry the test process's pid, so that tests running side by side do not meet."""

import os
import subprocess


def _ip(*args, check=True):
    p = subprocess.run(["ip"] + list(args), capture_output=True, timeout=10)
    if check and p.returncode != 0:
        raise AssertionError("ip %s: %s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p


class Net:
    def __init__(self, n):
        self.n = n
        pid = os.getpid()
        self.tag = "w%x" % (pid & 0xfffff)  # interface names are at most 15 bytes
        self.subnet = "10.231.%d" % (pid % 250)
        self.bridge = self.tag + "br"

    def ns(self, i):
        return "%sn%d" % (self.tag, i)

    def veth(self, i):
        return "%sv%d" % (self.tag, i)

    def addr(self, i):
        return "%s.%d" % (self.subnet, i)

    def argv(self, i, argv):
        """argv run in node i's namespace."""
        return ["ip", "netns", "exec", self.ns(i)] + list(argv)

    def __enter__(self):
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", self.subnet + ".254/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(1, self.n + 1):
                _ip("netns", "add", self.ns(i))
                _ip("link", "add", self.veth(i), "type", "veth", "peer", "name", "eth0", "netns",
                    self.ns(i))
                _ip("link", "set", self.veth(i), "master", self.bridge)
                _ip("link", "set", self.veth(i), "up")
                _ip("-n", self.ns(i), "addr", "add", self.addr(i) + "/24", "dev", "eth0")
                _ip("-n", self.ns(i), "link", "set", "eth0", "up")
                _ip("-n", self.ns(i), "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for i in range(1, self.n + 1):
            _ip("netns", "del", self.ns(i), check=False)  # takes its veth pair along
        _ip("link", "del", self.bridge, check=False)

    def isolate(self, i):
        """Cuts node i off from every other node and from the test (its link goes down)."""
        _ip("link", "set", self.veth(i), "down")

    def heal(self, i):
        _ip("link", "set", self.veth(i), "up")
