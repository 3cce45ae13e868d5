"""Container runtimes behind one interface (:mod:`node.runtime.api`): the process runtime, the
fake runtime, and the helpers they share (image catalog, pod network, volumes, logs, stats).

Import the submodules themselves: this package imports nothing, so the shim and the catalog's
server programs (isolated interpreters with only the standard library) load fast."""

__all__: list[str] = []
