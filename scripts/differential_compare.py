"""Compares what scripts/differential.sh left in OUT for one case; prints one line.

usage: differential_compare.py CASE OUT   (exit 0: same, 1: differs)
"""
import hashlib
import json
import re
import sys
import tarfile

CONFIG_KEYS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts", "Volumes"]
SHOWN = 4  # differences shown per kind before "+N more"
# The runtime's mount points: dockerd 20.10's BuildKit leaves them in a RUN's layer when the
# base image lacks them, current BuildKit and hoist remove them; not a difference when empty.
MOUNT_POINTS = {"dev", "proc", "sys"}


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def tar_tree(path):
    """path -> (type, mode, uid, gid, symlink target, sha256) of every entry of a tar."""
    tree = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            name = m.name.lstrip("./").rstrip("/") if m.name not in (".", "./") else ""
            if not name:
                continue
            if m.isdir():
                kind, digest = "dir", ""
            elif m.issym():
                kind, digest = "symlink", ""
            elif m.isfile() or m.islnk():
                kind = "file"
                f = tar.extractfile(m)
                digest = hashlib.sha256(f.read() if f else b"").hexdigest()[:12]
            else:
                kind, digest = "other", ""
            tree[name] = (kind, oct(m.mode & 0o7777), m.uid, m.gid,
                          m.linkname if m.issym() else "", digest)
    return tree


def oci_config(path):
    with tarfile.open(path) as tar:
        def blob(digest):
            return json.load(tar.extractfile("blobs/" + digest.replace(":", "/")))
        desc = json.load(tar.extractfile("index.json"))["manifests"][0]
        doc = blob(desc["digest"])
        while "manifests" in doc:
            doc = blob(doc["manifests"][0]["digest"])
        return blob(doc["config"]["digest"])


def docker_config(path):
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        return json.load(tar.extractfile(manifest[0]["Config"]))


def summary(config):
    c = config.get("config") or {}
    out = {k: c.get(k) or None for k in CONFIG_KEYS}
    out["history"] = [h.get("created_by", "") for h in config.get("history") or []]
    return out


def run_output(log):
    """The RUN steps' output lines of a --progress=plain log (`#N 0.123 text`), sorted."""
    return sorted(m.group(1).rstrip() for m in re.finditer(r"(?m)^#\d+ \d+\.\d+ (.*)$", log))


def more(items):
    shown = "; ".join(items[:SHOWN])
    return shown + (f"; +{len(items) - SHOWN} more" if len(items) > SHOWN else "")


def main():
    case, out = sys.argv[1], sys.argv[2]
    hoist_ok = read(f"{out}/hoist.rc").strip() == "0"
    docker_ok = read(f"{out}/docker.rc").strip() == "0"
    hoist_log, docker_log = read(f"{out}/hoist.log"), read(f"{out}/docker.log")
    diffs = []
    if not hoist_ok and not docker_ok:
        print(f"{case} same (both fail)")
        return 0
    if hoist_ok != docker_ok:
        failed, log = ("hoist", hoist_log) if not hoist_ok else ("docker", docker_log)
        last = [l for l in log.splitlines() if l.strip()][-1:] or [""]
        print(f"{case} differs: run: only {failed} fails ({last[0].strip()[:160]})")
        return 1
    ho, do = run_output(hoist_log), run_output(docker_log)
    if ho != do:
        diffs.append(f"run: output hoist {ho[:SHOWN]} docker {do[:SHOWN]}")
    try:
        h, d = tar_tree(f"{out}/hoist.tar"), tar_tree(f"{out}/docker.tar")
        for tree, other in ((h, d), (d, h)):
            for p in MOUNT_POINTS - other.keys():
                empty = not any(q.startswith(p + "/") for q in tree)
                if tree.get(p, ("",))[0] == "dir" and empty:
                    del tree[p]
        items = [f"{p} only in hoist" for p in sorted(h.keys() - d.keys())]
        items += [f"{p} only in docker" for p in sorted(d.keys() - h.keys())]
        fields = ["type", "mode", "uid", "gid", "target", "sha256"]
        for p in sorted(h.keys() & d.keys()):
            if h[p] != d[p]:
                what = [f"{f} {a}/{b}" for f, a, b in zip(fields, h[p], d[p]) if a != b]
                items.append(f"{p} {', '.join(what)}")
        if items:
            diffs.append("files (hoist/docker): " + more(items))
    except (OSError, tarfile.TarError, KeyError) as err:
        diffs.append(f"files: cannot read the tars: {err}")
    try:
        hc, dc = summary(oci_config(f"{out}/hoist-oci.tar")), summary(docker_config(f"{out}/docker-image.tar"))
        items = [f"{k} {json.dumps(hc[k])} / {json.dumps(dc[k])}" for k in hc if hc[k] != dc[k]]
        if items:
            diffs.append("config (hoist / docker): " + more(items))
    except (OSError, tarfile.TarError, KeyError, ValueError) as err:
        diffs.append(f"config: cannot read the images: {err}")
    if diffs:
        print(f"{case} differs: " + " | ".join(diffs))
        return 1
    print(f"{case} same")
    return 0


if __name__ == "__main__":
    sys.exit(main())
