#!/usr/bin/env python3
"""Writes a docker-archive tar of a busybox root filesystem for one architecture.

Usage: make-base-image.py BUSYBOX_STATIC.deb ARCH TAG OUT.tar

No image can be pulled here, and `docker import --platform` is ignored by Docker 20.10, so
the image config is written by hand with the right `architecture` (and `variant` for arm64).
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile

# The image's creation time, fixed. Real images carry one in their config and in each history
# entry; BuildKit fills a missing history time with the time of the build, so without it every
# build FROM this image would get a new config, and the same image could never be found again
# on a fresh runner. `scripts/testbed` reloads an image that lacks it.
CREATED = "2024-01-01T00:00:00Z"

APPLETS = ["sh", "ls", "cat", "echo", "uname", "mkdir", "rm", "cp", "mv", "test", "true",
           "false", "env", "sleep", "grep", "sed", "wc", "head", "tail", "touch", "printf",
           "chmod", "ln", "find", "tr", "date", "id", "stat", "sort", "sha256sum", "dd", "tee",
           "cut", "expr", "basename", "dirname", "pwd", "du", "df", "mount", "hostname", "wget",
           "tar", "gzip", "xargs", "awk", "diff", "which", "readlink", "realpath", "seq"]


def main():
    deb, arch, tag, out = sys.argv[1:5]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg", "-x", deb, tmp], check=True)
        busybox = os.path.join(tmp, "bin", "busybox")
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
            for d in ["bin", "tmp", "etc", "root", "usr", "usr/bin"]:
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                info.mode = 0o1777 if d == "tmp" else 0o755
                t.addfile(info)
            t.add(busybox, "bin/busybox")
            for applet in APPLETS:
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type = tarfile.SYMTYPE
                info.linkname = "busybox"
                info.mode = 0o777
                t.addfile(info)
            passwd = b"root:x:0:0:root:/root:/bin/sh\n"
            info = tarfile.TarInfo("etc/passwd")
            info.size = len(passwd)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(passwd))
        layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "created": CREATED,
        "history": [{"created": CREATED, "created_by": f"make-base-image.py busybox-static:{arch}"}],
    }
    if arch == "arm64":
        config["variant"] = "v8"
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]
    with tarfile.open(out, mode="w") as t:
        for name, data in [("layer.tar", layer_bytes), (config_name, config_bytes),
                           ("manifest.json", json.dumps(manifest).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
