"""The image catalog of the process runtime: what an image name means when there are no
images, only the host's programs.

* ``busybox``, ``alpine``, ``debian``, ``ubuntu`` (any tag, any registry prefix): the pod's
  ``command``/``args`` run with the host's tools (``sh -c``, ``sleep``, ``echo``, ``wget``...);
  with no command they run ``sh``, as the images do.  A tool missing from the host is run as a
  ``busybox`` applet when the host has busybox.
* ``nginx``, ``httpd``: a small HTTP server (``node.runtime.servers``) on the container's TCP
  ports (default 80), bound to the pod IP, serving a page, a health path (``/healthz``) and the
  files of a volume mounted at the image's document root.
* ``registry.k8s.io/pause`` sleeps; ``ketch/echo`` answers every request with what it received.
* Entries from the agent's configuration: image name -> command (and optionally args, env,
  working dir).

An image that is none of these cannot be pulled: :class:`~node.runtime.api.ImageNotFound`,
which the pod worker shows as ErrImagePull and then ImagePullBackOff, as Kubernetes does.

``command``/``args`` follow Docker's rules with the entry's entrypoint and cmd (see
:meth:`ImageCatalog.argv`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api import ImageNotFound

__all__ = ["DEFAULT_PATH", "ImageCatalog", "ImageEntry", "normalize_image", "python_program"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = ("import sys;sys.path.insert(0,{root!r});"
         "from node.runtime.{module} import main;main(sys.argv[1:])")


def python_program(module: str, *args: str) -> tuple[str, ...]:
    """argv running ``node.runtime.<module>.main(args)`` in a fresh, isolated interpreter
    (``-I -S``: no site packages, no environment variables, so a pod's ``PYTHONPATH`` cannot
    change it; the module imports only the standard library)."""
    return (sys.executable, "-I", "-S", "-c", _BOOT.format(root=_ROOT, module=module), *args)


@dataclass(frozen=True)
class ImageEntry:
    """What running an image means.  ``aliases``: command names that mean the image's own
    server (``command: [nginx, -g, daemon off;]`` runs the built-in server)."""

    name: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    default_ports: tuple[int, ...] = ()
    aliases: frozenset[str] = frozenset()
    multicall: str = ""  # run a command missing from the host as an applet of this program
    document_root: str = ""


def _server(name: str, kind: str, port: int, docroot: str = "",
            aliases: Sequence[str] = ()) -> ImageEntry:
    return ImageEntry(name=name, entrypoint=python_program("servers", kind),
                      default_ports=(port,), aliases=frozenset(aliases), document_root=docroot)


_SHELL_IMAGES = ("busybox", "alpine", "debian", "ubuntu")
_BUILTIN: dict[str, ImageEntry] = {
    **{n: ImageEntry(name=n, cmd=("sh",), multicall="busybox") for n in _SHELL_IMAGES},
    "nginx": _server("nginx", "nginx", 80, "/usr/share/nginx/html", ("nginx",)),
    "httpd": _server("httpd", "httpd", 80, "/usr/local/apache2/htdocs",
                     ("httpd", "httpd-foreground")),
    "registry.k8s.io/pause": ImageEntry(name="registry.k8s.io/pause",
                                        entrypoint=python_program("servers", "pause"),
                                        aliases=frozenset({"/pause", "pause"})),
    "ketch/echo": _server("ketch/echo", "echo", 8080),
}
_ALIASES = {"k8s.gcr.io/pause": "registry.k8s.io/pause", "gcr.io/google-containers/pause":
            "registry.k8s.io/pause", "library/httpd": "httpd", "library/nginx": "nginx"}


def normalize_image(image: str) -> str:
    """The catalog key of an image reference: registry (Docker Hub's dropped), path, no tag or
    digest.  ``docker.io/library/busybox:1.36`` -> ``busybox``; ``registry.k8s.io/pause:3.10``
    -> ``registry.k8s.io/pause``."""
    ref = image.strip().split("@", 1)[0]
    parts = ref.split("/")
    if ":" in parts[-1]:
        parts[-1] = parts[-1].split(":", 1)[0]
    if len(parts) > 1 and parts[0] in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        parts = parts[1:]
    if len(parts) == 2 and parts[0] == "library":
        parts = parts[1:]
    key = "/".join(parts)
    return _ALIASES.get(key, key)


@dataclass
class ImageCatalog:
    """The images this node can run: the built-in ones and ``extra`` entries from the agent's
    configuration, each ``name -> [command...]`` or ``name -> {"command": [...], "args":
    [...], "env": {...}, "workingDir": "..."}``."""

    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._entries = dict(_BUILTIN)
        for name, spec in self.extra.items():
            self._entries[normalize_image(name)] = _user_entry(normalize_image(name), spec)

    def resolve(self, image: str) -> ImageEntry:
        """The entry of ``image``; raises :class:`ImageNotFound` with the message a registry
        miss gives."""
        key = normalize_image(image)
        entry = self._entries.get(key)
        if entry is None:
            raise ImageNotFound(
                f'failed to pull and unpack image "{image}": failed to resolve reference '
                f'"{image}": {key}: not found in the image catalog of this node (known: '
                f'{", ".join(sorted(self._entries))})')
        return entry

    def image_ref(self, image: str) -> str:
        """The ``imageID`` reported for ``image``."""
        return f"ketch-catalog://{self.resolve(image).name}"

    @staticmethod
    def argv(entry: ImageEntry, command: Sequence[str], args: Sequence[str],
             path: str = DEFAULT_PATH) -> list[str]:
        """Docker's rule: ``command`` replaces the entrypoint (and drops the image's cmd),
        ``args`` replace the cmd.  A command naming the image's own server runs it; a command
        missing from ``path`` runs as an applet of the entry's multicall program when the
        host has it.  Empty when there is nothing to run."""
        if command:
            head = command[0]
            if os.path.basename(head) in entry.aliases and entry.entrypoint:
                # the image's own program: its flags mean nothing to the built-in server
                return list(entry.entrypoint)
            argv = [*command, *args]
        elif args:
            argv = [*entry.entrypoint, *args]
        else:
            argv = [*entry.entrypoint, *entry.cmd]
        if argv and entry.multicall and "/" not in argv[0] \
                and shutil.which(argv[0], path=path) is None:
            multicall = shutil.which(entry.multicall, path=path)
            if multicall is not None:
                argv = [multicall, *argv]
        return argv


def _user_entry(name: str, spec: Any) -> ImageEntry:
    if isinstance(spec, (list, tuple)):
        return ImageEntry(name=name, entrypoint=tuple(str(a) for a in spec))
    if not isinstance(spec, Mapping):
        raise TypeError(f"image catalog entry {name!r}: a command list or a mapping")
    env = spec.get("env") or {}
    return ImageEntry(
        name=name,
        entrypoint=tuple(str(a) for a in spec.get("command") or ()),
        cmd=tuple(str(a) for a in spec.get("args") or ()),
        env=tuple((str(k), str(v)) for k, v in env.items()),
        working_dir=str(spec.get("workingDir") or ""),
        default_ports=tuple(int(p) for p in spec.get("ports") or ()),
    )
