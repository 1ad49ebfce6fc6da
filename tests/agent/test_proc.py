"""Which pod runs a GPU process: the UID in its cgroup path, in every layout the kubelet uses."""

import pytest

from scheduler.agent.proc import ProcessOwner, ProcResolver, pod_uid_from_cgroup

UID = "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"


@pytest.mark.parametrize(("cgroup", "uid"), [
    pytest.param(f"0::/kubepods/burstable/pod{UID}/0123abcd\n", UID, id="cgroupfs-v2"),
    pytest.param(f"12:memory:/kubepods/pod{UID}/0123abcd\n11:cpu:/kubepods/pod{UID}/0123abcd\n", UID,
                 id="cgroupfs-v1-guaranteed"),
    pytest.param("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
                 f"{UID.replace('-', '_')}.slice/cri-containerd-0123.scope\n", UID, id="systemd-v2"),
    pytest.param("0::/system.slice/sshd.service\n", "", id="host-process"),
    pytest.param("0::/user.slice/user-1000.slice/session-3.scope\n", "", id="user-session"),
])
def test_pod_uid_from_cgroup(cgroup, uid):
    assert pod_uid_from_cgroup(cgroup) == uid


def test_resolver_reads_a_proc_tree(tmp_path):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text(f"0::/kubepods/besteffort/pod{UID}/abc\n")
    (tmp_path / "42" / "comm").write_text("python3\n")
    (tmp_path / "43").mkdir()
    (tmp_path / "43" / "cgroup").write_text("0::/system.slice/foo.service\n")
    resolver = ProcResolver(tmp_path)
    assert resolver.owner(42) == ProcessOwner(pod_uid=UID, command="python3")
    assert resolver.owner(43) == ProcessOwner(pod_uid="", command="?")  # comm unreadable, still a host process
    assert resolver.owner(43).known
    assert not resolver.owner(44).known  # exited in between
